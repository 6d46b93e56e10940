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

// earlyStreamsAttack is a peer that completes TLS with the node at target,
// opens the control stream without finishing its hello, then opens
// streams window-full of data each, as many as fill the node's link
// window. It returns the bytes the node let it write and how its
// connection ended.
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
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first byte of a hello frame: the control stream exists, the
	// hello never completes.
	if _, err := ctrl.Write([]byte{frameHello}); err != nil {
		t.Fatal(err)
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

// TestStrangerStreamsBeforeHelloRefused: a stranger (a certificate of
// another CA) that completes TLS may not fill the node's receive window
// (LinkWindow, 32 MiB) on streams the node never reads while it takes its
// time over the hello: before, the node took the whole window, for each
// of its handshake slots, until the handshake timed out. Now the first
// stream besides the control stream ends the connection with a protocol
// error, or the node refused the stranger's certificate before it
// (acceptHandshake refuses a certificate that does not verify at once).
func TestStrangerStreamsBeforeHelloRefused(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.HandshakeTimeout = time.Minute // no timeout ends the attack
	})
	window := a.cfg.LinkWindow
	stranger := issue(t, testCA(t, "m"), "x")
	written, end := earlyStreamsAttack(t, a.LocalAddr(), stranger.TLSCertificate(), window)
	t.Logf("the stranger wrote %d of %d bytes before its hello; its connection: %v", written, window, end)
	if written > window/8 {
		t.Fatalf("a stranger wrote %d bytes on streams before its hello (the link window is %d)", written, window)
	}
	var ae *quic.ApplicationError
	if !errors.As(end, &ae) || ae.ErrorCode != codeProtocol && ae.ErrorCode != codeRefused {
		t.Fatalf("the stranger's connection ended with %v, want the node's protocol error or refusal", end)
	}
	// The node counts the failure once its handshake goroutine has
	// released the slot, which may be after the stranger saw the close.
	waitFor(t, "the handshake counted as failed", 10*time.Second, func() bool { return a.HandshakeStats().Failed > 0 })
	// An honest node still links.
	b := newNode(t, issue(t, ca, "b"), nil)
	l := dial(t, b, a)
	s, err := l.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestDialedStrangerStreamsBeforeHelloRefused is the same attack on a
// node that dials: an address that answers with a certificate of another
// CA (one gossip announced, say) opens streams toward the dialler as soon
// as TLS completed, while the dialler waits for its refusal (or, before,
// for its hello).
func TestDialedStrangerStreamsBeforeHelloRefused(t *testing.T) {
	a := newNode(t, issue(t, testCA(t, "m"), "a"), func(c *QUICConfig) {
		c.HandshakeTimeout = time.Minute
	})
	window := a.cfg.LinkWindow
	cert := issue(t, testCA(t, "m"), "x").TLSCertificate()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}, ClientAuth: tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{cert},
	}
	ln, err := quic.ListenAddr("127.0.0.2:0", tlsConf, &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		written uint64
		end     error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := ln.Accept(ctx)
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
	if _, err := a.Dial(ctx, ln.Addr().String()); err == nil {
		t.Fatal("a link to a stranger came up")
	}
	r := <-res
	t.Logf("the stranger wrote %d of %d bytes toward the dialler; its connection: %v", r.written, window, r.end)
	if r.written > window/8 {
		t.Fatalf("a stranger wrote %d bytes on streams toward a dialler before answering its hello (the link window is %d)", r.written, window)
	}
	var ae *quic.ApplicationError
	if !errors.As(r.end, &ae) || ae.ErrorCode != codeProtocol {
		t.Fatalf("the stranger's connection ended with %v, want the dialler's protocol error", r.end)
	}
}
