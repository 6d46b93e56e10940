package links

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// handshakeFlood is a misbehaving peer: from one UDP socket it keeps
// conns QUIC handshakes open toward target with a certificate the mesh
// does not trust, renewing each one as soon as the target drops it. The
// node refuses such a certificate in TLS, so each handshake holds its
// slot by stalling before it sends its certificate, for longer than the
// node's handshake timeout (floodStall).
type handshakeFlood struct {
	tr       *quic.Transport
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	refused  atomic.Int64 // attempts the target refused or dropped before TLS completed
	complete atomic.Int64 // attempts that completed TLS
}

func startHandshakeFlood(t *testing.T, target net.Addr, bindIP string, conns int, id *identity.Identity) *handshakeFlood {
	t.Helper()
	udp, err := net.ListenPacket("udp", bindIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	f := &handshakeFlood{tr: &quic.Transport{Conn: udp}}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	cert := id.TLSCertificate()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			select {
			case <-ctx.Done():
			case <-time.After(floodStall):
			}
			return &cert, nil
		},
	}
	qc := &quic.Config{HandshakeIdleTimeout: 10 * time.Second, MaxIdleTimeout: 30 * time.Second}
	for range conns {
		// A refusal comes back at once: renew it half a second later.
		f.wg.Go(func() {
			redial(ctx, f.tr, target, tlsConf, qc, 500*time.Millisecond, &f.refused, &f.complete, func(conn *quic.Conn) {
				select {
				case <-conn.Context().Done():
				case <-ctx.Done():
				}
			})
		})
	}
	t.Cleanup(func() { f.stop(); _ = udp.Close() })
	return f
}

// floodStall is how long a flood's handshake waits before it sends its
// certificate: past the node's handshake timeout, which ends it.
const floodStall = DefaultHandshakeTimeout + time.Second

// redial dials target from tr until ctx ends, counting the attempts
// refused (then waiting pause) and those that completed TLS (then holding
// the connection with hold and closing it).
func redial(ctx context.Context, tr *quic.Transport, target net.Addr, tlsConf *tls.Config, qc *quic.Config,
	pause time.Duration, refused, complete *atomic.Int64, hold func(*quic.Conn)) {
	for ctx.Err() == nil {
		conn, err := tr.Dial(ctx, target, tlsConf, qc)
		if err != nil {
			if ctx.Err() == nil {
				refused.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
			continue
		}
		complete.Add(1)
		hold(conn)
		_ = conn.CloseWithError(0, "")
	}
}

// handshakesFrom is the number of handshake slots addr's prefix holds.
func (t *QUICTransport) handshakesFrom(addr net.Addr) int { return t.gate.heldBy(addr) }

func (f *handshakeFlood) stop() {
	f.cancel()
	f.wg.Wait()
	_ = f.tr.Close()
}

// linkSetups dials target from n, closes the link, and repeats, rounds
// times; it returns how many links came up. Like an honest client, it
// retries a failed setup once.
func linkSetups(t *testing.T, from *node, to *node, rounds, tries int) int {
	t.Helper()
	return linkSetupsTo(t, from, to.LocalAddr().String(), rounds, tries, func() bool {
		return len(from.Links()) == 0 && len(to.Links()) == 0
	})
}

// linkSetupsTo is linkSetups to the node at addr; closed says when a
// link closed by from is gone.
func linkSetupsTo(t *testing.T, from *node, addr string, rounds, tries int, closed func() bool) int {
	t.Helper()
	ok := 0
	for i := range rounds {
		var l Link
		var err error
		for try := range tries {
			if try > 0 {
				time.Sleep(200 * time.Millisecond) // a dialer's back-off
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			l, err = from.Dial(ctx, addr)
			cancel()
			if err == nil {
				break
			}
			t.Logf("honest link setup %d, try %d: %v", i, try+1, err)
		}
		if err != nil {
			continue
		}
		ok++
		_ = l.Close("next round")
		waitFor(t, "the link to close", patience, closed)
	}
	return ok
}

// TestHandshakeFloodWithoutCertificate floods a node with QUIC handshakes
// that present a certificate of another CA and then sit silent, more of
// them than the node has handshake slots, all from one address. A valid
// node at another address keeps linking: every one of its link setups
// succeeds during the flood (within one retry) and none is sent a QUIC
// Retry (whose short queue in quic-go the flood fills, dropping the first
// packet of an honest peer queued behind it: a 200 ms retransmission), the
// flooding address is held to its share of slots and refused beyond it,
// and the node logs the flood in at most a few WARN lines.
func TestHandshakeFloodWithoutCertificate(t *testing.T) {
	ca := testCA(t, "m")
	var logs logBuf
	a := newNode(t, issue(t, ca, "a"), logTo(&logs))
	// The honest node dials from another address than the attacker, as
	// it would from another host (127.0.0.0/8 is all loopback on Linux).
	udp, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	retries := &retryCounter{PacketConn: udp}
	t.Cleanup(func() { _ = udp.Close() })
	// The honest dialer waits as long as a loaded machine needs for its
	// side of the handshake (the flooded node keeps its default bound).
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn, c.HandshakeTimeout = retries, patience })

	const rounds = 8
	base := linkSetups(t, b, a, rounds, 2)
	if base != rounds {
		t.Fatalf("without a flood only %d of %d link setups succeeded", base, rounds)
	}

	conns := 2 * maxPendingHandshakes
	if testing.Short() {
		conns = maxPendingHandshakes + handshakeShare
	}
	floodStart := time.Now()
	flood := startHandshakeFlood(t, a.LocalAddr(), "127.0.0.2", conns, issue(t, testCA(t, "m"), "x"))
	var held atomic.Int64 // most slots the attacker's address held at once
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			held.Store(max(held.Load(), int64(a.handshakesFrom(flood.tr.Conn.LocalAddr()))))
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	waitFor(t, "the flood to make as many attempts as the node has slots", time.Minute, func() bool {
		return flood.complete.Load()+flood.refused.Load() >= maxPendingHandshakes
	})
	retriesBefore := retries.n.Load()
	during := linkSetups(t, b, a, rounds, 2)
	retriesDuring := retries.n.Load() - retriesBefore
	st := a.HandshakeStats()
	close(stopWatch)
	watch.Wait()
	flood.stop()
	floodFor := time.Since(floodStart)
	t.Logf("flood lasted %v", floodFor)
	t.Logf("link setups: %d/%d without the flood, %d/%d during it (%d Retries); flood: %d completed TLS, %d refused, at most %d slots held; node: %+v",
		base, rounds, during, rounds, retriesDuring, flood.complete.Load(), flood.refused.Load(), held.Load(), st)

	if during != rounds {
		t.Fatalf("during the flood %d of %d honest link setups succeeded, want every one", during, rounds)
	}
	if retriesDuring != 0 {
		t.Fatalf("the honest node was sent %d QUIC Retries during a flood from another address", retriesDuring)
	}
	if st.RefusedShare+st.RefusedFull+st.RefusedRate == 0 || flood.refused.Load() == 0 {
		t.Fatalf("the flooding address was never refused: %+v", st)
	}
	if n := held.Load(); n > handshakeBorrow {
		t.Fatalf("the flooding address held %d handshake slots, more than the %d one source may borrow", n, handshakeBorrow)
	}
	if st.Failed == 0 {
		t.Fatalf("the silent handshakes were not counted as failed: %+v", st)
	}
	// One rate-limited WARN with counts per handshakeLogPeriod, not a line
	// per attempt (a loaded machine stretches the flood over more periods).
	lines := strings.Count(logs.String(), "inbound link handshakes failing or refused")
	if most := 2 + int(floodFor/handshakeLogPeriod); lines == 0 || lines > most {
		t.Fatalf("%d WARN lines about a flood of %v, want 1 to %d:\n%s", lines, floodFor, most, logs.String())
	}
	// Every line but the honest link's own up and down (one pair per round
	// in which a registered the link before b closed it, so their number
	// varies with timing): nothing logged per flood attempt.
	other := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		honest := strings.Contains(line, "peer=b ") && (strings.Contains(line, `msg="link up"`) || strings.Contains(line, `msg="link down"`))
		if !honest {
			other++
		}
	}
	if other > 20 {
		t.Fatalf("the node logged %d lines during the flood besides the honest link's:\n%s", other, logs.String())
	}
}

// retryCounter counts the QUIC Retry packets read from a socket.
type retryCounter struct {
	net.PacketConn
	n atomic.Int64
}

func (c *retryCounter) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	// A long header (0x80) of type Retry (0x30) in QUIC v1 (RFC 9000, 17.2.5).
	if n > 0 && p[0]&0xb0 == 0xb0 {
		c.n.Add(1)
	}
	return n, addr, err
}

// failingHandshakes is a misbehaving peer spread over many source
// prefixes: from each, one after another, it completes a QUIC handshake
// with a certificate the mesh does not trust and closes the connection at
// once, so that each handshake frees its slot and the next one costs the
// target another round of TLS crypto.
type failingHandshakes struct {
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	trs      []*quic.Transport
	complete atomic.Int64 // handshakes that completed TLS (the target did the crypto)
	refused  atomic.Int64
}

func startFailingHandshakes(t *testing.T, target net.Addr, ips []string, id *identity.Identity) *failingHandshakes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &failingHandshakes{cancel: cancel}
	cert := id.TLSCertificate()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}
	qc := &quic.Config{HandshakeIdleTimeout: 5 * time.Second}
	for _, ip := range ips {
		udp, err := net.ListenPacket("udp", ip+":0")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		tr := &quic.Transport{Conn: udp}
		f.trs = append(f.trs, tr)
		f.wg.Go(func() {
			redial(ctx, tr, target, tlsConf, qc, 20*time.Millisecond, &f.refused, &f.complete, func(*quic.Conn) {})
		})
	}
	t.Cleanup(f.stop)
	return f
}

func (f *failingHandshakes) stop() {
	f.cancel()
	f.wg.Wait()
	for _, tr := range f.trs {
		_ = tr.Close()
		_ = tr.Conn.Close()
	}
	f.trs = nil
}

// TestHandshakeFloodFromManyPrefixes floods a node with handshakes that
// fail (a certificate of another CA, closed at once) from 16 source
// prefixes, each within its own rate, so that together they would have
// the node do TLS crypto as fast as they can send. The node spends no more
// than its node-wide rate on them (here lowered to 4 per second so that
// the flood exceeds it on any machine): the handshakes it admits are
// bounded by that rate over the flood's duration, it refuses the rest,
// and a valid node at another address, whose handshakes do not fail,
// still sets up every link within a dialer's retries (from the reserve,
// after a QUIC Retry).
func TestHandshakeFloodFromManyPrefixes(t *testing.T) {
	ca := testCA(t, "m")
	const rate = 4
	start := time.Now() // a's rate starts full
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) { c.testHandshakeRate = rate; c.OnRefused = nil })
	udp, err := net.ListenPacket("udp", "127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn = udp })

	const prefixes, rounds = 16, 8
	ips := make([]string, prefixes)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.1.%d", i+1)
	}
	flood := startFailingHandshakes(t, a.LocalAddr(), ips, issue(t, testCA(t, "m"), "x"))
	waitFor(t, "the flood to make a few attempts from each prefix", time.Minute, func() bool {
		return flood.complete.Load()+flood.refused.Load() >= 4*prefixes
	})
	// The first failed handshake of each fresh prefix may take a token of
	// the reserve (16 prefixes against a burst of 8): for about a second
	// the honest node can be refused like them, after which every flooding
	// prefix is barred for its failures and the reserve is the honest
	// node's. So each honest setup gets a dialer's retries: up to 3 s.
	// The first setup, a new peer's first contact, gets failQuiet more:
	// until a handshake of its prefix proved a certificate, a handshake
	// of its own that ended unproven (a retransmitted first packet
	// admitted after the node refused the other, its dialer gone) bars it
	// as it bars a stranger. Once it linked, none does.
	tries := int(3 * time.Second / (200 * time.Millisecond))
	during := linkSetups(t, b, a, 1, tries+int(failQuiet/(200*time.Millisecond)))
	during += linkSetups(t, b, a, rounds-1, tries)
	st := a.HandshakeStats()
	elapsed := time.Since(start)
	flood.stop()
	t.Logf("link setups during the flood: %d/%d; flood: %d completed TLS, %d refused in %v; node: %+v",
		during, rounds, flood.complete.Load(), flood.refused.Load(), elapsed.Round(time.Millisecond), st)

	if during != rounds {
		t.Fatalf("during the flood %d of %d honest link setups succeeded, want every one", during, rounds)
	}
	// Each handshake the node admitted (did crypto for) took a token of
	// its rate (burst and rate since it started) or of the reserve
	// (counted). Without the node-wide rate the flood gets as many as it
	// can complete (282 in 3.5 s on a 2-core machine with -race).
	bound := int64(rate+rate*elapsed.Seconds()) + int64(st.Reserved)
	if n := flood.complete.Load(); n > bound {
		t.Fatalf("the flood completed %d TLS handshakes in %v, more than the node's rate allows (%d)", n, elapsed, bound)
	}
	if st.RefusedNodeRate == 0 || st.Reserved == 0 {
		t.Fatalf("the node's rate refused nothing or the honest node never drew on the reserve: %+v", st)
	}
}
