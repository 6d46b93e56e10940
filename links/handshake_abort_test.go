package links

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// transportAt returns a QUIC transport on a new UDP socket at ip and the
// function that closes both.
func transportAt(t *testing.T, ip string) (*quic.Transport, func()) {
	t.Helper()
	udp, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	return tr, func() { _ = tr.Close(); _ = udp.Close() }
}

// keepProofs makes n's certificate proofs forgive an unproven ending
// however slow the machine (forgiveWindow), for the tests of what a proof
// forgives rather than of how long.
func keepProofs(n *node) {
	n.gate.mu.Lock()
	n.gate.forgiveWindow = 2 * patience
	n.gate.mu.Unlock()
}

// stallAfterTLS dials target from ip with id's certificate, completes
// TLS, sends the first byte of a hello and stalls until target cuts the
// handshake. It returns the dial's error (nil: target admitted it, and
// refused a certificate that does not verify in TLS or cut the
// handshake after).
func stallAfterTLS(t *testing.T, ip string, id *identity.Identity, target net.Addr) error {
	t.Helper()
	tr, done := transportAt(t, ip)
	defer done()
	cert := id.TLSCertificate()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := tr.Dial(ctx, target, tlsConf, &quic.Config{HandshakeIdleTimeout: patience, MaxIdleTimeout: patience})
	if peerRefusedCertificate(err) {
		return nil // before Dial returned
	}
	if err != nil {
		return err
	}
	if s, err := conn.OpenStream(); err == nil {
		_, _ = s.Write([]byte{frameHello}) // fails if the node refused it in TLS
	}
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
		t.Fatal("the node never cut a stalled handshake")
	}
	return nil
}

// deafDialer returns node b of ca on a deafConn (not armed) at 127.0.0.8,
// linked once to a.
func deafDialer(t *testing.T, ca *identity.CA, a *node) (*node, *deafConn) {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.8:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	dc := &deafConn{PacketConn: udp}
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn = dc })
	if got := linkSetups(t, b, a, 1, 1); got != 1 {
		t.Fatal("the first link setup failed")
	}
	return b, dc
}

// abandonDial arms dc and dials a from b, whose attempt hears nothing
// after the Retry, and waits until a gave the abandoned handshake up.
func abandonDial(t *testing.T, a, b *node, dc *deafConn) {
	t.Helper()
	// The link set up just before may still hold its slot at a for a
	// moment after b has the link: a dial given up on seeing that slot
	// could end before a held anything of its own (the wait below then
	// timed out once, beside busy loops).
	waitFor(t, "the node to end the handshakes before", patience, func() bool { return a.HandshakeStats().InProgress == 0 })
	failed := a.HandshakeStats().Failed
	dc.armed.Store(true)
	// The dial is given up once a holds its handshake, however long the
	// Retry and the answer to it take to arrive on a loaded machine (a
	// fixed second let a dial end before a held anything).
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := b.Dial(ctx, a.LocalAddr().String())
		errc <- err
	}()
	waitFor(t, "the node to hold the dial's handshake", patience, func() bool {
		return a.HandshakeStats().InProgress > 0
	})
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a dial that hears nothing after the Retry linked")
	}
	waitFor(t, "the node to give the abandoned handshake up", patience, func() bool {
		return a.HandshakeStats().Failed > failed && a.HandshakeStats().InProgress == 0
	})
}

// deafConn is a socket that, once armed, drops every datagram it reads
// after the first QUIC Retry: the dialer answers the Retry and then
// hears nothing, so it gives its attempt up while the node holds it.
type deafConn struct {
	net.PacketConn
	armed, deaf atomic.Bool
}

func (c *deafConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.armed.Load() {
			return n, addr, err
		}
		if c.deaf.Load() {
			continue
		}
		if n > 0 && p[0]&0xb0 == 0xb0 { // a Retry (see retryCounter)
			c.deaf.Store(true)
		}
		return n, addr, err
	}
}

// TestOwnUnprovenHandshakesDoNotBarMember: a node admits new handshakes
// only from its reserve (as during a flood from many prefixes), where a
// prefix whose handshake ended before its peer proved a certificate of
// the mesh is barred for failQuiet. The bar is for strangers:
//   - a peer with a certificate of another CA, refused in TLS: its next
//     attempt is refused;
//   - a peer with a certificate of the mesh does the same (cut before its
//     hello proved anything, as the handshake timeout does under load):
//     TLS proved its certificate, and its next attempt is admitted;
//   - a node that linked gives an attempt up after answering the Retry
//     (the node holds the handshake until it times out, unproven): its
//     next link setup succeeds at once.
//
// Before, the second and third were barred like the first, for 10 s.
func TestOwnUnprovenHandshakesDoNotBarMember(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.testHandshakeRate = 1e-9 // only the reserve admits
		c.HandshakeTimeout = 2 * time.Second
		c.OnRefused = nil
	})
	// The abandoned handshake below ends at its timeout, 3 s after the
	// proof of the link before it on an idle machine (2 s timeout): a
	// loaded one aged that proof out of the 4 s window, the ending
	// counted as failed and barred b's prefix for failQuiet. What the
	// window allows is TestGateProofForgivesOneEnding's; this test is
	// about what a proof forgives.
	keepProofs(a)
	settled := func() {
		waitFor(t, "the node to end the handshake", patience, func() bool { return a.HandshakeStats().InProgress == 0 })
	}

	stranger := issue(t, testCA(t, "m"), "x")
	if err := stallAfterTLS(t, "127.0.0.6", stranger, a.LocalAddr()); err != nil {
		t.Fatalf("a new prefix is refused the reserve: %v", err)
	}
	settled()
	if err := stallAfterTLS(t, "127.0.0.6", stranger, a.LocalAddr()); err == nil {
		t.Fatal("a stranger whose handshake failed was admitted again within failQuiet")
	}

	member := issue(t, ca, "m1")
	if err := stallAfterTLS(t, "127.0.0.7", member, a.LocalAddr()); err != nil {
		t.Fatalf("a new prefix is refused the reserve: %v", err)
	}
	settled()
	if err := stallAfterTLS(t, "127.0.0.7", member, a.LocalAddr()); err != nil {
		t.Fatalf("a peer whose TLS handshake proved a certificate of the mesh is barred after its hello was cut: %v", err)
	}
	settled()

	b, dc := deafDialer(t, ca, a)
	abandonDial(t, a, b, dc)
	dc.armed.Store(false)
	dc.deaf.Store(false)
	// A few tries, well within failQuiet, for a loaded machine.
	if got := linkSetups(t, b, a, 1, 3); got != 1 {
		t.Fatalf("a node that linked is refused for giving an attempt up: %+v", a.HandshakeStats())
	}
}

// TestVersionMismatchDoesNotBarPrefix: a peer of another protocol version
// whose TLS handshake proved a certificate of the mesh is refused, but its
// prefix is not barred from the reserve (a rolling upgrade behind one
// address): its next dial is admitted and refused for its version again.
func TestVersionMismatchDoesNotBarPrefix(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.testHandshakeRate = 1e-9 // only the reserve admits
		c.OnRefused = nil
	})
	udp, err := net.ListenPacket("udp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) {
		c.PacketConn = udp
		c.testVersion = ProtocolVersion + 1
	})
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		_, err := b.Dial(ctx, a.LocalAddr().String())
		cancel()
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "protocol version mismatch") {
			t.Fatalf("dial %d: %v\nwant a refusal for the protocol version", i+1, err)
		}
		waitFor(t, "the node to end the handshake", patience, func() bool { return a.HandshakeStats().InProgress == 0 })
	}
}
