package links

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"
)

// ProtocolVersion is the link protocol version carried in the hello. Peers
// with a different version are refused. Version 2: every relay records
// itself in the open path and the next checks it (circuit.CheckPath); a
// node of version 1 would have its forwarded opens refused, so the link
// is refused at its set-up instead, naming both versions.
const ProtocolVersion = 2

// ALPN is the TLS application protocol negotiated on every link.
const ALPN = "circuitmesh/1"

// Role is what a node does for the mesh.
type Role uint8

const (
	// RoleRouter nodes forward circuits for others.
	RoleRouter Role = 0
	// RoleLeaf nodes never forward and advertise only themselves.
	RoleLeaf Role = 1
)

func (r Role) String() string {
	if r == RoleLeaf {
		return "leaf"
	}
	return "router"
}

// LogValue logs a role by name, in JSON logs too.
func (r Role) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Cost is a link's routing cost. One unit is 10 µs of round-trip-time
// equivalent; every link costs at least MinCost so that hop count matters
// even on loopback. Costs add up along a path (routing.Metric uses the same
// scale).
type Cost = uint32

// MinCost is the floor of any measured link cost (100 µs equivalent).
const MinCost Cost = 10

// Sentinel errors. Errors returned by this package wrap one of these (and
// carry context), so callers test them with errors.Is.
var (
	// ErrLinkLost: the link died (peer unreachable, transport closed, goodbye
	// received). Stream operations on a lost link return an error wrapping it.
	ErrLinkLost = errors.New("link lost")
	// ErrRefused: the handshake was refused (bad certificate, wrong CA, name
	// or mesh mismatch, version mismatch). The error text says why; a
	// certificate refused by the peer in TLS, whose alert has no text, is
	// said to be refused, with this node's own certificate's fault if it
	// has one.
	ErrRefused = errors.New("link refused")
	// ErrHandshakeSlow: a dial timed out after the address answered: the
	// QUIC handshake was under way (the address sent packets of it within
	// every HandshakeTimeout) but did not complete by its deadline, or it
	// completed (the peer's certificate chains to the mesh CA) and the
	// hello did not. A node on a CPU-starved machine answers this way; an
	// address where nothing listens does not (its dial fails after
	// HandshakeTimeout without this error).
	ErrHandshakeSlow = errors.New("link handshake answered but not completed in time")
	// ErrPathMTU: a dial got no answer within HandshakeTimeout, and the
	// kernel's route to the address has an MTU below what a QUIC datagram
	// of 1,200 bytes needs (1,228 bytes over IPv4, 1,248 over IPv6): the
	// outgoing interface's, or the lower one a router on the path
	// reported. QUIC's handshake cannot cross such a path; the error says
	// the MTU. A path narrow only towards this node (the answers lost)
	// is a timeout without it.
	ErrPathMTU = errors.New("path MTU too small for QUIC")
	// ErrDuplicateName: a node refused a link because another live node
	// with the same name is already linked to it (wrapped with ErrRefused
	// on the refusing side; the dialler reads the reason text).
	ErrDuplicateName = errors.New("duplicate node name")
	// ErrClosed: the transport or link was closed locally. It also matches
	// net.ErrClosed. The errors of a link, and of its streams, that the
	// peer closed (a goodbye, any close code, a QUIC transport error) do
	// not match it, nor does a dial the peer refused; those of a link
	// QUIC ended on its own (idle timeout, stateless reset) still do.
	ErrClosed = net.ErrClosed
	// ErrStreamReset: the peer reset the stream. See StreamResetError.
	ErrStreamReset = errors.New("stream reset")
	// ErrStreamAborts: a link was closed because its peer ended more
	// streams without carrying an open than QUICConfig.StreamAborts
	// allows (wrapped with ErrLinkLost on both sides: the side that
	// closed and the peer, which reads close code 0x106).
	ErrStreamAborts = errors.New("too many streams ended without an open")
	// ErrNoStreamCredit: the link's peer grants no more streams now
	// (every one it allows is open); see StreamTrier.
	ErrNoStreamCredit = errors.New("no stream credit from the peer")
)

// StreamTrier is a Link that can open a stream without waiting for the
// peer to grant one (QUIC links and memlink's in-memory links do).
type StreamTrier interface {
	// TryOpenStream is OpenStream failing at once, with an error
	// wrapping ErrNoStreamCredit, when the peer grants no more streams
	// now.
	TryOpenStream() (Stream, error)
}

// StreamResetError reports a reset with the peer's application error code.
// It unwraps to ErrStreamReset.
type StreamResetError struct {
	Code   uint64
	Remote bool
}

func (e *StreamResetError) Error() string {
	side := "local"
	if e.Remote {
		side = "remote"
	}
	return "stream reset by " + side + " side (code " + itoa(e.Code) + ")"
}

func (e *StreamResetError) Unwrap() error { return ErrStreamReset }

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// Stream is one bidirectional byte stream on a link (a QUIC stream for QUIC
// links). All methods are safe for concurrent use except that Read and Write
// each have a single caller at a time.
type Stream interface {
	io.Reader
	io.Writer
	// CloseWrite sends FIN: the peer reads io.EOF after the data already
	// written. Reading continues. After the write side was reset, or
	// stopped by the peer, it fails with a *StreamResetError, as Write.
	CloseWrite() error
	// CloseRead tells the peer to stop sending (STOP_SENDING with code).
	CloseRead(code uint64)
	// Reset aborts both directions with an application error code; the
	// peer's pending and future Reads and Writes fail with a
	// *StreamResetError carrying that code, even if a goroutine of this
	// side, woken by the reset, closes the stream meanwhile (CloseWrite
	// and CloseRead wait for Reset).
	Reset(code uint64)
	// Close is CloseWrite plus CloseRead(0): a graceful end from our side.
	Close() error
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// Quality is a link's measured quality.
type Quality struct {
	RTT    time.Duration // smoothed round-trip time
	RTTVar time.Duration // round-trip time variation
	Loss   float64       // fraction of packets lost, 0..1
	Cost   Cost          // the (damped or pinned) cost fed to routing
	Pinned bool          // Cost comes from configuration, not measurement
	// Draining: the peer said it is draining, and Cost is the highest
	// whatever is pinned, so that routes move away from the peer.
	Draining bool
}

// Link is one authenticated, live connection to a neighbour.
type Link interface {
	// Peer is the neighbour's node name, authenticated by its certificate
	// (or self-declared in development mode).
	Peer() string
	// PeerRole is what the neighbour said it is in its hello.
	PeerRole() Role
	// PeerFeatures are the feature bits from the neighbour's hello.
	PeerFeatures() uint64
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// Outbound reports whether this side dialled the link.
	Outbound() bool
	// Established is when the handshake completed.
	Established() time.Time

	// OpenStream opens a new circuit stream. It does not block on the peer's
	// stream limit beyond ctx.
	OpenStream(ctx context.Context) (Stream, error)
	// AcceptStream returns the next circuit stream opened by the peer.
	AcceptStream(ctx context.Context) (Stream, error)
	// OpenStreams is the number of circuit streams currently open.
	OpenStreams() int

	// SendRouting queues an opaque routing payload on the control stream.
	// It never blocks: when the bounded queue is full the payload is dropped
	// and ErrQueueFull returned (routing tolerates loss). The link may keep
	// payload until it is delivered (the in-memory links hand the same
	// slice to the peer): the caller must not modify it afterwards.
	SendRouting(payload []byte) error

	// Quality is the latest measured quality.
	Quality() Quality

	// Done is closed when the link is down; Err then says why (wrapping
	// ErrLinkLost or ErrClosed).
	Done() <-chan struct{}
	Err() error
	// Close sends a goodbye with reason and tears the link down; open
	// streams end with an error wrapping ErrLinkLost at both ends.
	Close(reason string) error
}

// ErrQueueFull is returned by SendRouting when the control queue is full.
var ErrQueueFull = errors.New("control queue full")

// Handler receives a transport's link events. Calls for one link are
// serialised and ordered: LinkUp, then any number of Routing and
// CostChanged, then exactly one LinkDown. Of two links to one peer, the
// one adopted first has its LinkUp first: a link that replaces another
// never has its LinkUp before the replaced link's (QUICTransport, whose
// replacement waits for that LinkUp). Calls may come from any goroutine
// and must not block for long (hand off to a queue). Routing's payload
// may be the sender's own slice (the in-memory links pass it on): a
// handler may keep it but must not modify it.
type Handler interface {
	LinkUp(l Link)
	Routing(l Link, payload []byte)
	CostChanged(l Link, q Quality)
	LinkDown(l Link, err error)
}

// Transport makes links: it dials and accepts, runs the handshake, and
// reports every link through its Handler. Implemented over QUIC by
// QUICTransport and in memory by package memlink.
type Transport interface {
	// Dial links to the node at addr. When a link to the same peer already
	// exists (e.g. after a simultaneous dial) the surviving link is
	// returned.
	Dial(ctx context.Context, addr string) (Link, error)
	// LocalAddr is the address peers dial.
	LocalAddr() net.Addr
	// Links returns the live links.
	Links() []Link
	// Close closes every link (with goodbye) and the transport.
	Close() error
}
