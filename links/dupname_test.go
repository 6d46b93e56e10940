package links

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// dupWithFaultyB starts a and b1 (named b, on a faultConn), links b1 to
// a, and starts b2, a second node named b. modA adjusts a's
// configuration.
func dupWithFaultyB(t *testing.T, modA func(*QUICConfig)) (a, b1, b2 *node, fc *faultConn) {
	t.Helper()
	ca := testCA(t, "m")
	a = newNode(t, issue(t, ca, "a"), modA)
	b1, fc = faultyNode(t, issue(t, ca, "b"), tolerant)
	b2 = newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.HandshakeTimeout = patience })
	dial(t, b1, a)
	a.rec.waitEvent(t, "up", patience)
	return a, b1, b2, fc
}

// A live node that a goes without hearing for longer than two probe
// intervals, as a starved machine or a lossy path makes it, keeps its
// link: a second node with its name is refused, not taken for its
// restart. a's detector tolerates 10 s of silence; b1 sends nothing for
// 2.1 s, and b2 dials 0.6 s into that.
func TestDuplicateNameQuietPeerKeepsItsLink(t *testing.T) {
	a, b1, b2, fc := dupWithFaultyB(t, func(c *QUICConfig) { c.ProbeMisses = 50 })
	est := a.Link("b").Established()
	fc.cut.Store(true)
	time.Sleep(600 * time.Millisecond)
	resume := time.AfterFunc(1500*time.Millisecond, func() { fc.cut.Store(false) })
	defer resume.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	l, err := b2.Dial(ctx, a.LocalAddr().String())
	if err == nil {
		t.Fatalf("a accepted a second node named b (link %v) while b's link was up and only quiet", l.Established())
	}
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `another node named "b"`) {
		t.Fatalf("newcomer's dial: %v, want a refusal naming the duplicate", err)
	}
	fc.cut.Store(false)
	if ups, downs := a.rec.counts(); ups != 1 || downs != 0 {
		t.Fatalf("a saw %d LinkUp and %d LinkDown; the established link must stay", ups, downs)
	}
	if cur := a.Link("b"); cur == nil || !cur.Established().Equal(est) {
		t.Fatal("a's link to b was replaced or lost")
	}
	if l := b1.Link("a"); l == nil || l.Err() != nil {
		t.Fatal("b1 lost its link to a")
	}
}

// A node that restarts (its old process silent, not yet declared dead)
// is linked on its first dial, once the old link is declared dead, and
// is not refused as a duplicate of itself. a's handshake time is raised
// so that the detector's allowance on a loaded machine (up to 6.4 s)
// fits in it; with the default 5 s, a newcomer the detector takes longer
// over is refused and linked when it dials again.
func TestRestartedNodeLinkedOnFirstDial(t *testing.T) {
	var refusals atomic.Int64
	a, _, b2, fc := dupWithFaultyB(t, both(countRefusals(&refusals), func(c *QUICConfig) { c.HandshakeTimeout = patience }))
	old := a.Link("b")
	fc.cut.Store(true) // the old process is gone

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	began := time.Now()
	l, err := b2.Dial(ctx, a.LocalAddr().String())
	if err != nil {
		t.Fatalf("the restarted node's first dial: %v", err)
	}
	t.Logf("restarted node linked after %v (old link: %v)", time.Since(began), old.Err())
	if old.Err() == nil {
		t.Fatal("a accepted the restarted node while its old link was up")
	}
	waitFor(t, "a's LinkDown of the old link and LinkUp of the new", patience, func() bool {
		ups, downs := a.rec.counts()
		return ups >= 2 && downs >= 1
	})
	if ups, downs := a.rec.counts(); ups != 2 || downs != 1 {
		t.Fatalf("a saw %d LinkUp and %d LinkDown, want 2 and 1", ups, downs)
	}
	if cur := a.Link("b"); cur == nil || !cur.Established().After(old.Established()) || l.Err() != nil {
		t.Fatal("a's link to b is not the restarted node's")
	}
	if n := refusals.Load(); n != 0 {
		t.Fatalf("a refused %d links of the restarted node", n)
	}
}
