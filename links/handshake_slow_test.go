package links

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// A dial to an address that answers the QUIC handshake but never
// completes the link handshake (a node too starved of CPU to send its
// hello in time) fails with ErrHandshakeSlow; a dial to an address where
// nothing answers fails without it. Discovery bans only the latter for
// long: they are what a member without a certificate announces.
func TestDialTellsSlowAnswerFromSilence(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) { c.HandshakeTimeout = timeout })
	b := newNode(t, issue(t, ca, "b"), nil)

	// b's certificate and TLS configuration on a raw QUIC listener that
	// completes the QUIC and TLS handshakes and then sends nothing.
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { tr.Close() })
	ln, err := tr.Listen(b.tlsConf, &quic.Config{HandshakeIdleTimeout: patience})
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *quic.Conn, 1)
	go func() {
		c, err := ln.Accept(context.Background())
		if err == nil {
			accepted <- c
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	_, err = a.Dial(ctx, udp.LocalAddr().String())
	if !errors.Is(err, ErrHandshakeSlow) {
		t.Fatalf("dial to a peer that completed TLS and sent no hello: %v, want ErrHandshakeSlow", err)
	}
	select {
	case c := <-accepted:
		c.CloseWithError(0, "")
	default:
	}

	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_, err = a.Dial(ctx, silent.LocalAddr().String())
	if err == nil || errors.Is(err, ErrHandshakeSlow) {
		t.Fatalf("dial to an address where nothing answers: %v, want an error other than ErrHandshakeSlow", err)
	}
}
