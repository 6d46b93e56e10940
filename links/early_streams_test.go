package links

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// earlyStreamsAttack is a peer that completes TLS with the node at target
// (as far as its own side goes: the node may refuse it in TLS), opens the
// control stream without finishing its hello, then opens streams
// window-full of data each, as many as fill the node's link window. It
// returns the bytes the node let it write and how its connection ended.
func earlyStreamsAttack(t *testing.T, target net.Addr, cert tls.Certificate, window uint64) (written uint64, end error) {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	defer func() { _ = tr.Close(); _ = udp.Close() }()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := tr.Dial(ctx, target, tlsConf, &quic.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		// The node's refusal ended the handshake before Dial returned.
		return 0, err
	}
	defer conn.CloseWithError(0, "")
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, context.Cause(conn.Context())
	}
	// The first byte of a hello frame: the control stream exists, the
	// hello never completes.
	if _, err := ctrl.Write([]byte{frameHello}); err != nil {
		return 0, context.Cause(conn.Context())
	}
	return fillStreams(ctx, conn, window)
}

// fillStreams opens streams on conn and writes a stream window into each
// until window bytes are written or the peer stops taking them. It returns
// the bytes written and how conn ended.
func fillStreams(ctx context.Context, conn *quic.Conn, window uint64) (written uint64, end error) {
	chunk := make([]byte, initialStreamWindow)
	for written+uint64(len(chunk)) <= window {
		s, err := conn.OpenStreamSync(ctx)
		if err != nil {
			break
		}
		_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
		n, err := s.Write(chunk)
		written += uint64(n)
		if err != nil {
			break
		}
	}
	select {
	case <-conn.Context().Done():
		end = context.Cause(conn.Context())
	case <-time.After(patience):
		end = errors.New("the connection is still up")
	}
	return written, end
}

// listenQUIC is a QUIC listener at ip, closed with its transport and
// socket when t ends, as its Accept method. early: it hands out
// connections as early as a server may send (quic.Transport.ListenEarly),
// before the client's last handshake flight.
func listenQUIC(t *testing.T, ip string, tlsConf *tls.Config, conf *quic.Config, early bool) (addr net.Addr, accept func(context.Context) (*quic.Conn, error)) {
	t.Helper()
	udp, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { _ = tr.Close(); _ = udp.Close() })
	if early {
		ln, err := tr.ListenEarly(tlsConf, conf)
		if err != nil {
			t.Fatal(err)
		}
		return ln.Addr(), ln.Accept
	}
	ln, err := tr.Listen(tlsConf, conf)
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr(), ln.Accept
}

// TestStreamsBeforeHelloRefused: a peer that completes TLS may not fill
// the node's receive window (LinkWindow, 32 MiB) on streams the node never
// reads while it takes its time over the hello: before, the node took the
// whole window, for each of its handshake slots, until the handshake
// timed out. A member's first stream besides the control stream ends the
// connection with a protocol error; a stranger (a certificate of another
// CA) is refused in TLS, before the node could read any of its streams.
func TestStreamsBeforeHelloRefused(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.HandshakeTimeout = time.Minute // no timeout ends the attack
	})
	window := a.cfg.LinkWindow
	for _, c := range []struct {
		name string
		cert tls.Certificate
		// ended says whether the connection ended as it must.
		ended func(error) bool
		want  string
	}{
		{"member", issue(t, ca, "m").TLSCertificate(), func(end error) bool {
			var ae *quic.ApplicationError
			return errors.As(end, &ae) && ae.Remote && ae.ErrorCode == codeProtocol
		}, "the node's protocol error"},
		{"stranger", issue(t, testCA(t, "m"), "x").TLSCertificate(), peerRefusedCertificate, "the node's refusal of its certificate in TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			failed := a.HandshakeStats().Failed
			written, end := earlyStreamsAttack(t, a.LocalAddr(), c.cert, window)
			t.Logf("the peer wrote %d of %d bytes before its hello; its connection: %v", written, window, end)
			if written > window/8 {
				t.Fatalf("a peer wrote %d bytes on streams before its hello (the link window is %d)", written, window)
			}
			if !c.ended(end) {
				t.Fatalf("the peer's connection ended with %v, want %s", end, c.want)
			}
			// The node counts the failure once the slot is released,
			// which may be after the peer saw the close.
			waitFor(t, "the handshake counted as failed", 10*time.Second, func() bool { return a.HandshakeStats().Failed > failed })
		})
	}
	// An honest node still links.
	b := newNode(t, issue(t, ca, "b"), nil)
	l := dial(t, b, a)
	s, err := l.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestDialedStreamsBeforeHelloRefused is the same attack on a node that
// dials: an address (one gossip announced, say) that answers and opens
// streams toward the dialler. A member, opening them once its handshake
// completed, is closed with a protocol error; a stranger (a certificate
// of another CA), opening them as early as QUIC lets a server send
// (before the client's last handshake flight: quic.ListenEarly), is
// refused in TLS, before the dialler could read its streams.
func TestDialedStreamsBeforeHelloRefused(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.HandshakeTimeout = time.Minute
	})
	window := a.cfg.LinkWindow
	for _, c := range []struct {
		name  string
		cert  tls.Certificate
		early bool
		ended func(error) bool
		want  string
	}{
		// Early, the member could see the dialler's close in a handshake
		// packet, where QUIC carries no application's code.
		{"member", issue(t, ca, "m").TLSCertificate(), false, func(end error) bool {
			var ae *quic.ApplicationError
			return errors.As(end, &ae) && ae.Remote && ae.ErrorCode == codeProtocol
		}, "the dialler's protocol error"},
		{"stranger", issue(t, testCA(t, "m"), "x").TLSCertificate(), true, peerRefusedCertificate, "the dialler's refusal of its certificate in TLS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tlsConf := &tls.Config{
				MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, ClientAuth: tls.RequireAnyClientCert,
				Certificates: []tls.Certificate{c.cert},
			}
			addr, accept := listenQUIC(t, "127.0.0.2", tlsConf, &quic.Config{MaxIdleTimeout: 30 * time.Second}, c.early)
			type result struct {
				written uint64
				end     error
			}
			res := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				conn, err := accept(ctx)
				if err != nil {
					res <- result{end: err}
					return
				}
				defer conn.CloseWithError(0, "")
				w, end := fillStreams(ctx, conn, window)
				res <- result{w, end}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := a.Dial(ctx, addr.String()); err == nil {
				t.Fatal("a link to a peer that sent no hello came up")
			}
			r := <-res
			t.Logf("the peer wrote %d of %d bytes toward the dialler; its connection: %v", r.written, window, r.end)
			if r.written > window/8 {
				t.Fatalf("a peer wrote %d bytes on streams toward a dialler before answering its hello (the link window is %d)", r.written, window)
			}
			if !c.ended(r.end) {
				t.Fatalf("the peer's connection ended with %v, want %s", r.end, c.want)
			}
		})
	}
}
