package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// TestReachDamper: a peer's first reachBurst changes are reported at
// once (a peer coming up leaves no entry); later ones are held back and
// the state after them is reported once the budget allows, or nothing
// when they cancelled out; entries are swept once their budget is full.
func TestReachDamper(t *testing.T) {
	d := newReachDamper()
	t0 := time.Unix(1000, 0)
	if !d.note("a", true, t0) || len(d.peers) != 0 {
		t.Fatalf("a peer coming up: reported and no entry expected, entries %d", len(d.peers))
	}
	up := false
	for i := range reachBurst {
		if !d.note("x", up, t0) {
			t.Fatalf("change %d of x held back within the burst", i+1)
		}
		up = !up
	}
	// Three more changes: held back, ending down.
	for range 3 {
		if d.note("x", up, t0) {
			t.Fatal("a change beyond the burst was reported at once")
		}
		up = !up
	}
	due := d.next()
	if due.Before(t0.Add(time.Second)) || due.After(t0.Add(time.Second+10*time.Millisecond)) {
		t.Fatalf("held change due at %v, want just after %v", due, t0.Add(time.Second))
	}
	called := false
	d.due(t0.Add(500*time.Millisecond), func(string, bool, bool, int) { called = true })
	if called {
		t.Fatal("held change reported before the budget allowed")
	}
	d.due(due, func(peer string, up, changed bool, n int) {
		called = true
		if peer != "x" || up || !changed || n != 3 {
			t.Errorf("reported %s up=%v changed=%v held=%d, want x down changed after 3", peer, up, changed, n)
		}
	})
	if !called || len(d.held) != 0 || !d.next().IsZero() {
		t.Fatalf("held change not reported once due (called %v, held %d)", called, len(d.held))
	}
	// Two changes that cancel out: nothing changed to report.
	t1 := due
	d.note("x", true, t1)
	d.note("x", false, t1)
	d.due(d.next(), func(_ string, _, changed bool, n int) {
		if changed || n != 2 {
			t.Errorf("changes that cancelled out reported changed=%v held=%d", changed, n)
		}
	})
	// Swept once full again: a later PeerDown of another peer sweeps.
	d.note("y", false, t1.Add(time.Minute))
	if _, ok := d.peers["x"]; ok {
		t.Error("x's full, idle entry was not swept")
	}
}

// TestReachDamperHoldsLostRoutes: a held PeerDown is reported at its
// deadline, or before once no neighbour advertises the peer, and not at
// all once the route came back; at most maxLostHeld are held, and the
// tick loop wakes for the first deadline.
func TestReachDamperHoldsLostRoutes(t *testing.T) {
	d := newReachDamper()
	t0 := time.Unix(1000, 0)
	for i := range maxLostHeld {
		if !d.hold(routing.Route{Dest: fmt.Sprintf("p%d", i)}, t0.Add(time.Duration(i+1)*time.Second)) {
			t.Fatalf("PeerDown %d not held", i)
		}
	}
	if d.hold(routing.Route{Dest: "one-more"}, t0.Add(time.Second)) {
		t.Fatalf("a PeerDown held beyond the %d held", maxLostHeld)
	}
	if at := d.next(); !at.Equal(t0.Add(time.Second)) {
		t.Fatalf("first held PeerDown due at %v, want %v", at, t0.Add(time.Second))
	}
	if !d.back("p0") || d.back("p0") {
		t.Fatal("a route back did not forget its held PeerDown once")
	}
	var got []string
	report := func(rt routing.Route) { got = append(got, rt.Dest) }
	// At 2.5 s p1 is due; p5 is no longer advertised.
	d.lostDue(t0.Add(2500*time.Millisecond), func(p string) bool { return p != "p5" }, report)
	slices.Sort(got)
	if !slices.Equal(got, []string{"p1", "p5"}) || len(d.lost) != maxLostHeld-3 {
		t.Fatalf("reported %v, %d still held; want p1 and p5, %d held", got, len(d.lost), maxLostHeld-3)
	}
}
