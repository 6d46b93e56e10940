package links

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// A node that dials an address where a stranger (a certificate of another
// CA) answers, and sends no refusal of its own, refuses it half its
// handshake timeout after TLS completed, without waiting for a hello:
// before, the stranger, sending none, held the connection's 1-RTT keys
// for twice the node's handshake timeout, and its packets written with
// the address of another connection of the node carried PATH_CHALLENGEs
// the node answered there (pathguard.go).
func TestDiallerRefusesStrangerBeforeHello(t *testing.T) {
	stranger := issue(t, testCA(t, "m"), "x")
	cert := stranger.TLSCertificate()
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN},
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert,
	}, &quic.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ended := make(chan error, 1)
	go func() { // accepts, sends no hello, and reports how its connection ended
		conn, err := ln.Accept(context.Background())
		if err != nil {
			ended <- err
			return
		}
		<-conn.Context().Done()
		ended <- context.Cause(conn.Context())
	}()

	const timeout = 5 * time.Second
	b := newNode(t, issue(t, testCA(t, "m"), "b"), func(c *QUICConfig) { c.HandshakeTimeout = timeout })
	began := time.Now()
	_, err = b.Dial(context.Background(), ln.Addr().String())
	took := time.Since(began)
	t.Logf("dial: %v after %v", err, took.Round(time.Millisecond))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not signed by the CA") {
		t.Fatalf("dial to a stranger = %v, want ErrRefused naming its certificate", err)
	}
	if took >= timeout {
		t.Errorf("the node refused the stranger %v after dialling, waiting for its hello (handshake timeout %v)", took.Round(time.Millisecond), timeout)
	}
	select {
	case err := <-ended:
		var ae *quic.ApplicationError
		if !errors.As(err, &ae) || ae.ErrorCode != codeRefused || !strings.Contains(ae.ErrorMessage, "not signed by the CA") {
			t.Errorf("the stranger's connection ended with %v, want the node's refusal naming its certificate", err)
		}
	case <-time.After(timeout):
		t.Error("the stranger's connection did not end")
	}
}
