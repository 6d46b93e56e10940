package links

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// handMadePeer is a peer that speaks the link protocol itself over a
// QUIC connection to a node, with the certificate of id.
type handMadePeer struct {
	conn *quic.Conn
	ctrl *quic.Stream
	peer helloMsg // the node's hello
}

// handMadeDial dials target from tr with id's certificate, opens the
// control stream and sends hello, then reads the node's hello. It
// returns nil (after closing the connection) if any step fails.
func handMadeDial(ctx context.Context, tr *quic.Transport, id *identity.Identity, target net.Addr, hello helloMsg) *handMadePeer {
	cert := id.TLSCertificate()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}
	conn, err := tr.Dial(ctx, target, tlsConf, &quic.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		return nil
	}
	ctrl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		_ = conn.CloseWithError(0, "")
		return nil
	}
	if err := writeHello(ctrl, hello); err != nil {
		_ = conn.CloseWithError(0, "")
		return nil
	}
	peer, err := readHello(ctrl)
	if err != nil {
		_ = conn.CloseWithError(0, "")
		return nil
	}
	return &handMadePeer{conn: conn, ctrl: ctrl, peer: peer}
}

// memberHello is the hello of node id with the given instance and nonce.
func memberHello(id *identity.Identity, instance, nonce uint64) helloMsg {
	return helloMsg{Version: ProtocolVersion, Role: RoleRouter, Instance: instance, Nonce: nonce, Mesh: id.Mesh, Node: id.Node}
}

// TestAttackLinksLostBeforeUpFloodTheLog: a holder of a valid
// certificate completes link handshakes (hello, ready) and closes each
// connection before the node adopted the link. It makes adoption wait by
// running two handshakes at once under two transport instances (each
// waits, up to the handshake timeout, for the other, which would replace
// it), and closes both in the meantime. Before, each such link made the
// node write an INFO "link lost before it was up" line, with no limit
// (16 lines in 1.7 s, about 560 a minute, from one address), where the
// links' other lines are written at most once per peer a period. Now
// that line is one of them.
func TestAttackLinksLostBeforeUpFloodTheLog(t *testing.T) {
	ca := testCA(t, "m")
	var lines atomic.Int64
	v := newNode(t, issue(t, ca, "v"), func(c *QUICConfig) {
		c.Logger = slog.New(lineCounter{"link lost before it was up", &lines, slog.LevelInfo})
		c.HandshakeTimeout = time.Second
	})
	m := issue(t, ca, "m")
	const pairs, rounds = 4, 3
	start := time.Now()
	var completed atomic.Int64
	for r := range rounds {
		var wg sync.WaitGroup
		for p := range pairs {
			for k := range 2 {
				wg.Go(func() {
					tr, done := transportAt(t, "127.0.0.2")
					defer done()
					ctx, cancel := context.WithTimeout(context.Background(), patience)
					defer cancel()
					h := memberHello(m, uint64(1000*r+10*p+k+1), uint64(1000*r+10*p+k+1))
					hp := handMadeDial(ctx, tr, m, v.LocalAddr(), h)
					if hp == nil {
						return
					}
					if err := writeFrame(hp.ctrl, frameReady, nil); err != nil {
						_ = hp.conn.CloseWithError(0, "")
						return
					}
					// Long enough for ready to reach the node, well
					// within the adoption's wait.
					time.Sleep(200 * time.Millisecond)
					completed.Add(1)
					_ = hp.conn.CloseWithError(0, "")
				})
			}
		}
		wg.Wait()
	}
	// Let the node's adoptions of the last round give up waiting.
	waitFor(t, "the node's handshakes to end", patience, func() bool { return v.HandshakeStats().InProgress == 0 })
	time.Sleep(200 * time.Millisecond)
	took := time.Since(start)
	most := 2 + int(took/linkLogPeriod)
	t.Logf("%d handshakes completed and closed in %v from one address: v logged %d \"link lost before it was up\" lines", completed.Load(), took.Round(time.Millisecond), lines.Load())
	if completed.Load() < pairs {
		t.Fatalf("only %d handshakes completed: the attack did not run", completed.Load())
	}
	if n := lines.Load(); n > int64(most) {
		t.Fatalf("one certificate holder made v log %d \"link lost before it was up\" lines in %v (%.0f a minute), want at most %d: the line has no per-peer limit",
			n, took.Round(time.Millisecond), float64(n)/took.Minutes(), most)
	}
}
