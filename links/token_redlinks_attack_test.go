package links

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/quic-go/quic-go"
)

// tokenSpy is a client's token store that says when it got a token and
// counts the tokens it handed out.
type tokenSpy struct {
	quic.TokenStore
	got    chan struct{}
	popped atomic.Int64
}

func (s *tokenSpy) Put(key string, tok *quic.ClientToken) {
	s.TokenStore.Put(key, tok)
	select {
	case s.got <- struct{}{}:
	default:
	}
}

func (s *tokenSpy) Pop(key string) *quic.ClientToken {
	tok := s.TokenStore.Pop(key)
	if tok != nil {
		s.popped.Add(1)
	}
	return tok
}

// TestAttackStrangerSkipsAddressValidationWithOldToken: an attacker
// handshakes once with a node and keeps the NEW_TOKEN token quic-go's
// server gives every connection that completes TLS. (Its first connection
// holds a member's certificate and sends no hello: TLS refuses a
// stranger's certificate, and the server's side of the handshake never
// completes.) Later, as a
// stranger (a certificate of another CA), from another
// port of its IP, while its prefix holds enough handshakes that the node
// asks it to prove its address, it presents that token: quic-go took it
// as proof of the address (valid 24 hours, any number of times), so the
// gate admitted the stranger as a validated address without a Retry.
// Links never present NEW_TOKEN tokens (their dialers keep none), so the
// node takes none: only a Retry of the handshake itself validates an
// address.
func TestAttackStrangerSkipsAddressValidationWithOldToken(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) { c.OnRefused = nil })
	stranger := issue(t, testCA(t, "m"), "x")
	tlsAs := func(id *identity.Identity) *tls.Config {
		cert := id.TLSCertificate()
		return &tls.Config{
			MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		}
	}
	spy := &tokenSpy{TokenStore: quic.NewLRUTokenStore(4, 4), got: make(chan struct{}, 1)}
	qc := &quic.Config{HandshakeIdleTimeout: patience / 4, TokenStore: spy}
	dialFrom := func(udp net.PacketConn, tlsConf *tls.Config) (*quic.Conn, error) {
		tr := &quic.Transport{Conn: udp}
		t.Cleanup(func() { _ = tr.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), patience/4)
		defer cancel()
		return tr.Dial(ctx, a.LocalAddr(), tlsConf, qc)
	}

	first, err := net.ListenPacket("udp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })
	conn, err := dialFrom(first, tlsAs(issue(t, ca, "y")))
	if err != nil {
		t.Fatalf("the first handshake: %v", err)
	}
	select {
	case <-spy.got:
	case <-time.After(patience):
		t.Fatal("the node gave a connection that completed TLS no NEW_TOKEN token")
	}
	_ = conn.CloseWithError(0, "")
	// Until the node sees that close, the first handshake counts among
	// the prefix's, and the flood's last ones would be asked to prove
	// their address as well.
	waitFor(t, "the node to end the first handshake", patience, func() bool {
		return a.handshakesFrom(first.LocalAddr()) == 0
	})
	// The node may count that handshake as failed (it ended before the
	// node marked its certificate proven: seen on a loaded machine); a
	// prefix with a recent failure is held to failedBurst handshakes that
	// proved nothing yet, and the flood's 8 would have the stranger's dial
	// refused at its share, before any Retry or token is looked at. Wait
	// for such a failure to age out.
	waitFor(t, "a failure of the first handshake, if counted, to age out", failQuiet+patience, func() bool {
		a.gate.mu.Lock()
		defer a.gate.mu.Unlock()
		ps := a.gate.prefixes[SourcePrefix(first.LocalAddr())]
		return ps == nil || !ps.failedWithin(time.Now())
	})

	// The stranger's prefix holds half its share: the node asks its new
	// handshakes to prove their address.
	flood := startHandshakeFlood(t, a.LocalAddr(), "127.0.0.5", handshakeShare/2, stranger)
	waitFor(t, "the stranger's prefix to hold half its share", patience, func() bool {
		return a.handshakesFrom(first.LocalAddr()) >= handshakeShare/2
	})
	defer flood.stop()
	// Its rate (8 a burst since its first handshake failed) has refilled,
	// so the node asks for a Retry rather than refusing at once.
	waitFor(t, "the stranger's prefix to have handshakes to start", patience, func() bool {
		a.gate.mu.Lock()
		defer a.gate.mu.Unlock()
		ps := a.gate.prefixes[SourcePrefix(first.LocalAddr())]
		return ps != nil && a.gate.tokensAt(ps, time.Now()) >= 2
	})

	udp, err := net.ListenPacket("udp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	// The node's count of first packets answered with a Retry: the
	// flood's handshakes are held, so only the stranger's dial asks.
	before := a.HandshakeStats().Retries
	conn, err = dialFrom(udp, tlsAs(stranger))
	if err == nil {
		_ = conn.CloseWithError(0, "")
	}
	asked := a.HandshakeStats().Retries - before
	t.Logf("tokens presented: %d; Retries the node asked: %d; dial: %v; node: %+v", spy.popped.Load(), asked, err, a.HandshakeStats())
	if spy.popped.Load() == 0 {
		t.Fatal("the stranger presented no token")
	}
	if asked == 0 {
		t.Fatal("a stranger's token from a past connection passed for proof of its address: the node asked no Retry of a prefix it asks to prove its addresses")
	}
}
