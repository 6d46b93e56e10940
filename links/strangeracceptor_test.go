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
// CA) answers refuses its certificate in TLS: the node never holds the
// connection's 1-RTT keys with it. Before, the node took any certificate
// in TLS and refused the stranger only after it, so the stranger held
// keys until its refusal, or, sending none, for twice the node's
// handshake timeout, and its packets written with the address of another
// connection of the node carried PATH_CHALLENGEs the node answered there
// (pathguard.go). The stranger here gets its connection as early as QUIC
// gives a server one (quic.ListenEarly), to see how it ends.
func TestDiallerRefusesStrangerInTLS(t *testing.T) {
	stranger := issue(t, testCA(t, "m"), "x")
	cert := stranger.TLSCertificate()
	addr, accept := listenQUIC(t, "127.0.0.1", &tls.Config{
		MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN},
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert,
	}, &quic.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second}, true)
	ended := make(chan error, 1)
	go func() { // accepts, sends nothing, and reports how its connection ended
		conn, err := accept(context.Background())
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
	_, err := b.Dial(context.Background(), addr.String())
	took := time.Since(began)
	t.Logf("dial: %v after %v", err, took.Round(time.Millisecond))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not signed by the CA") {
		t.Fatalf("dial to a stranger = %v, want ErrRefused naming its certificate", err)
	}
	if took >= timeout {
		t.Errorf("the node refused the stranger %v after dialling, as long as its handshake timeout %v", took.Round(time.Millisecond), timeout)
	}
	select {
	case err := <-ended:
		if !peerRefusedCertificate(err) {
			t.Errorf("the stranger's connection ended with %v, want the node's refusal of its certificate in TLS", err)
		}
	case <-time.After(timeout):
		t.Error("the stranger's connection did not end")
	}
}
