package links

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// allowance is the silence l's detector tolerates now: the 800 ms floor on
// a quiet link, more when the machine is loaded enough for the peer's
// frames to have arrived irregularly.
func allowance(l Link) time.Duration {
	return l.(*quicLink).gaps.allowance(DefaultProbeMisses * DefaultProbeInterval)
}

// faultyNode starts a node with identity id on a faultConn; mod adjusts
// its configuration.
func faultyNode(t *testing.T, id *identity.Identity, mod func(*QUICConfig)) (*node, *faultConn) {
	t.Helper()
	fc, err := newFaultConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fc.Close() })
	return newNode(t, id, both(mod, func(c *QUICConfig) { c.PacketConn = fc })), fc
}

// faultyPair links a (plain UDP) to b (on a faultConn).
func faultyPair(t *testing.T, modA func(*QUICConfig)) (a, b *node, fc *faultConn, la Link) {
	t.Helper()
	ca := testCA(t, "m")
	a = newNode(t, issue(t, ca, "a"), modA)
	b, fc = faultyNode(t, issue(t, ca, "b"), nil)
	la = dial(t, a, b)
	b.rec.waitEvent(t, "up", patience)
	return a, b, fc, la
}

func TestKilledPeerDetected(t *testing.T) {
	a, b, fc, la := faultyPair(t, nil)
	defer echo(acceptedLink(t, b, "a"))()
	s, err := la.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, _ = s.Write([]byte("x"))
		_, err := io.ReadAll(s)
		readErr <- err
	}()
	time.Sleep(300 * time.Millisecond) // a few healthy probes first
	allow := allowance(la)
	killed := time.Now()
	_ = fc.Close()
	// A starved process gives the peer a fresh window after each stall of
	// its own, so on a loaded machine the verdict may come long after the
	// cap: wait for it as long as any test waits.
	a.rec.waitEvent(t, "down", detectorCap*DefaultProbeMisses*DefaultProbeInterval+patience)
	ql := la.(*quicLink)
	<-ql.done
	// The detector waits longer than allow when the process itself runs
	// late (its ticks, its run queue): bound detection by what it
	// allowed when it decided, and that by its cap. A tick that ran three
	// intervals late or more gave the peer a fresh window (the process
	// cannot tell its own stall from the peer's silence): detection is
	// then bounded from that window's start, not from the kill. Both are
	// timed at the verdict, not when this goroutine next ran.
	used, late, at, from := ql.deadAllow, ql.deadLate, ql.deadAt, ql.deadFrom
	start := killed
	if from.After(killed) {
		start = from
	}
	took := at.Sub(start)
	t.Logf("killed peer detected %v after the kill, %v after the silence it counted began (allowance %v before the kill, %v at the verdict, own lateness %v)",
		at.Sub(killed), took, allow, used, late)
	if limit := detectorCap * DefaultProbeMisses * DefaultProbeInterval; used < DefaultProbeMisses*DefaultProbeInterval || used > limit {
		t.Fatalf("the detector allowed %v of silence, want %v to %v", used, DefaultProbeMisses*DefaultProbeInterval, limit)
	}
	if want := used + late + 1200*time.Millisecond; took > want {
		t.Fatalf("detection took %v from the kill or the fresh window after it, want < %v (allowed %v, own lateness %v)", took, want, used, late)
	}
	if err := la.Err(); !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "probes missed") {
		t.Fatalf("link error: %v", err)
	}
	if err := <-readErr; !errors.Is(err, ErrLinkLost) {
		t.Fatalf("stream on the dead link: %v", err)
	}
	if ups, downs := a.rec.counts(); ups != 1 || downs != 1 {
		t.Fatalf("%d LinkUp and %d LinkDown, want 1 and 1", ups, downs)
	}
	if _, err := la.OpenStream(context.Background()); !errors.Is(err, ErrLinkLost) {
		t.Fatalf("open stream on the dead link: %v", err)
	}
}

// TestNetworkCutDetected cuts b's outgoing packets: a stops hearing b and
// declares the link dead; b learns why from a's close.
func TestNetworkCutDetected(t *testing.T) {
	a, b, fc, la := faultyPair(t, nil)
	lb := acceptedLink(t, b, "a")
	time.Sleep(300 * time.Millisecond)
	allow := allowance(la)
	cut := time.Now()
	fc.cut.Store(true)
	// How soon the detector acts is TestKilledPeerDetected's; this test
	// is about who says what, so it waits as long as the detector may.
	a.rec.waitEvent(t, "down", detectorCap*DefaultProbeMisses*DefaultProbeInterval+patience)
	t.Logf("cut detected after %v (allowance %v before the cut)", time.Since(cut), allow)
	b.rec.waitEvent(t, "down", patience)
	if err := la.Err(); !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "no answer from b") {
		t.Fatalf("a's link error: %v", err)
	}
	if err := lb.Err(); !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "peer declared it dead: no answer from b") {
		t.Fatalf("b's link error: %v", err)
	}
}

func TestCostFollowsLatency(t *testing.T) {
	// a pins its cost to b; b measures.
	a, b, fc, la := faultyPair(t, func(c *QUICConfig) { c.StaticCost = map[string]Cost{"b": 500} })
	lb := acceptedLink(t, b, "a")
	before := lb.Quality().Cost
	if q := la.Quality(); q.Cost != 500 || !q.Pinned {
		t.Fatalf("pinned quality %+v", q)
	}
	fc.setDelay(30 * time.Millisecond)
	// Both sides measure the added latency. (On a loaded machine b's RTT
	// may exceed 30 ms before the delay: wait for a's too, which then
	// comes from the delay.)
	waitFor(t, "cost to follow 30 ms of latency", time.Minute, func() bool {
		q := lb.Quality()
		return q.RTT >= 30*time.Millisecond && q.Cost >= 3000 && la.Quality().RTT >= 25*time.Millisecond
	})
	q := lb.Quality()
	t.Logf("cost %d -> %d (rtt %v, rttvar %v)", before, q.Cost, q.RTT, q.RTTVar)
	// Routing is told the cost: by CostChanged (delivered after Quality
	// changed), or already at LinkUp when the handshake's round trips were
	// that slow (a loaded machine).
	waitFor(t, "the handler to be told the cost Quality reports", time.Minute, func() bool {
		last, _ := b.rec.reported()
		q = lb.Quality()
		return last == q.Cost
	})
	// The pinned side saw the latency but reports its pinned cost. (QUIC
	// subtracts the peer's reported ACK delay from RTT samples, so the
	// smoothed RTT may sit a little under the 30 ms injected.)
	if q := la.Quality(); q.Cost != 500 || q.RTT < 25*time.Millisecond {
		t.Fatalf("pinned side quality %+v", q)
	}
	if _, n := a.rec.reported(); n != 0 {
		t.Fatalf("pinned link reported %d cost changes", n)
	}
}

// TestLossMeasured drops one in five of b's packets while a stream keeps
// the link busy: b's quality reports the loss (TestQualityMeterFollowsStepAndLoss
// checks how loss enters the cost).
func TestLossMeasured(t *testing.T) {
	a, b, fc, _ := faultyPair(t, nil)
	lb := acceptedLink(t, b, "a")
	defer echo(acceptedLink(t, a, "b"))()
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		if err := roundTrip(ctx, lb, 1, 64<<10); err != nil {
			t.Fatal(err)
		}
	}
	if q := lb.Quality(); q.Loss != 0 {
		t.Fatalf("loss %v before any packet was dropped", q.Loss)
	}
	fc.loss.Store(5)
	waitFor(t, "loss to be measured", 10*time.Second, func() bool {
		if err := roundTrip(ctx, lb, 1, 64<<10); err != nil {
			t.Fatal(err)
		}
		return lb.Quality().Loss > 0.05
	})
	t.Logf("with 20%% of packets dropped: %+v", lb.Quality())
}

func TestGarbageDatagrams(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), nil)
	b := newNode(t, issue(t, ca, "b"), nil)
	junk, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	buf := make([]byte, 1500)
	for i := range 2000 {
		n := 1 + i%len(buf)
		_, _ = rand.Read(buf[:n])
		if i%2 == 0 && n > 5 { // looks like a QUIC v1 long header
			buf[0] = 0xc0 | buf[0]&0x3f
			copy(buf[1:5], []byte{0, 0, 0, 1})
		}
		_, _ = junk.WriteTo(buf[:n], a.LocalAddr())
	}
	l := dial(t, b, a)
	if l.Peer() != "a" {
		t.Fatalf("linked to %q", l.Peer())
	}
}

func TestSimultaneousDial(t *testing.T) {
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	ca := testCA(t, "m")
	for range rounds {
		// A link closed as the duplicate of another is no failure: no
		// WARN (there was one per minute for the handshake the peer
		// closed).
		var logs lockedBuffer
		logTo := func(c *QUICConfig) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) }
		a := newNode(t, issue(t, ca, "a"), logTo)
		b := newNode(t, issue(t, ca, "b"), logTo)
		errs := make(chan error, 2)
		go func() { _, err := a.Dial(context.Background(), b.LocalAddr().String()); errs <- err }()
		go func() { _, err := b.Dial(context.Background(), a.LocalAddr().String()); errs <- err }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("simultaneous dial: %v", err)
			}
		}
		settled := func() bool {
			return len(a.Links()) == 1 && len(b.Links()) == 1 &&
				a.Links()[0].Outbound() && !b.Links()[0].Outbound()
		}
		waitFor(t, "one link dialled by a", patience, settled)
		time.Sleep(200 * time.Millisecond)
		if !settled() {
			t.Fatal("links changed after settling")
		}
		for _, n := range []*node{a, b} {
			ups, downs := n.rec.counts()
			if ups-downs != 1 {
				t.Fatalf("%d LinkUp, %d LinkDown", ups, downs)
			}
			t.Logf("%s: %d LinkUp, %d LinkDown", n.name(), ups, downs)
		}
		done := echo(b.Links()[0])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := roundTrip(ctx, a.Links()[0], 1, 1000); err != nil {
			t.Fatal(err)
		}
		cancel()
		_ = a.Close()
		_ = b.Close()
		done()
		if strings.Contains(logs.String(), "level=WARN") {
			t.Fatalf("simultaneous dial logged a warning:\n%s", logs.String())
		}
	}
}

// Two dials from one node to the same peer at once (a redial loop and an
// explicit dial) make one link: neither end sees a link come up only to be
// closed as a duplicate, which would cut the circuits opened on it.
func TestConcurrentDialsFromOneSideMakeOneLink(t *testing.T) {
	ca := testCA(t, "m")
	for round := range 10 {
		a := newNode(t, issue(t, ca, "a"), nil)
		b := newNode(t, issue(t, ca, "b"), nil)
		ls := make(chan Link, 2)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				l, err := a.Dial(context.Background(), b.LocalAddr().String())
				ls <- l
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: dial: %v", round, err)
			}
		}
		if l1, l2 := <-ls, <-ls; l1 != l2 {
			t.Fatalf("round %d: the two dials returned different links", round)
		}
		b.rec.waitEvent(t, "up", patience)
		for _, n := range []*node{a, b} {
			if ups, downs := n.rec.counts(); ups != 1 || downs != 0 {
				t.Fatalf("round %d: %s saw %d LinkUp and %d LinkDown, want 1 and 0", round, n.name(), ups, downs)
			}
		}
		_ = a.Close()
		_ = b.Close()
	}
}
