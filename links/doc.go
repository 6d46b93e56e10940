// Package links connects circuitmesh nodes to their neighbours.
//
// link.go defines the abstraction every other layer builds on: a Transport
// dials and accepts Links; a Link is one authenticated connection to a
// neighbour carrying circuit Streams, a control channel for routing payloads,
// a measured Quality and a cost; a Handler receives LinkUp, Routing,
// CostChanged and LinkDown events.
//
// QUICTransport implements it over QUIC (quic-go) with TLS 1.3 mutual
// authentication by node certificates (package links/identity). One UDP
// socket serves both dialling and accepting. The first stream of each link
// is the control stream (hello, routing payloads, liveness probes, goodbye);
// every other stream is a circuit. A link stays at the address it was
// established from: QUIC connection migration is refused (pathguard.go).
// docs/PROTOCOL.md, section "Links",
// specifies the wire format, the refusal reasons, the duplicate-link rule,
// liveness and the cost formula.
//
// What the caller must do:
//   - give QUICConfig an Identity and a Handler; Handler methods must
//     return quickly (hand work to a queue) and must not call
//     QUICTransport.Close;
//   - Dial peers, or Keep(addr) for static links that redial with backoff;
//   - drain AcceptStream on every link and Close every Stream it gets;
//   - treat the payload passed to Handler.Routing as its own (it is not
//     reused);
//   - Close the transport, which closes every link with a goodbye and
//     waits for every goroutine it started; a PacketConn passed in
//     QUICConfig stays open and is the caller's to close.
//
// Errors wrap ErrLinkLost, ErrRefused, ErrBusy (a dial the peer refused
// with QUIC CONNECTION_REFUSED: busy, try later), ErrClosed (net.ErrClosed:
// closed by this node, or ended by QUIC itself on an idle timeout or a
// stateless reset; never a close the peer sent),
// ErrQueueFull, ErrFrameTooLarge, ErrHandshakeSlow (the peer answered the
// handshake but did not complete it in time), ErrPathMTU (a dial that got
// no answer over a route whose MTU is too small for QUIC's 1,200-byte
// datagrams) or ErrConfig; a link closed,
// or refused, because its peer ended more streams without an open than
// QUICConfig.StreamAborts allows also wraps ErrStreamAborts; stream resets
// are a *StreamResetError; deadline errors match os.ErrDeadlineExceeded.
//
// UDP buffers: quic-go asks for 7 MiB socket buffers. Root gets them; for
// other users raise the limits once per host:
//
//	sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000
//
// Development mode: an insecure identity (identity.Insecure) accepts any
// peer certificate; the transport logs a warning when it starts.
package links
