package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// drainRing is a ring of 8 nodes with 10 ms links, n0000–n0001 cheap
// (cost 10) and the others 100: most routes of n0000 and n0001 to each
// other's side use the cheap link, and its other path round the ring is
// not feasible for them (it is longer than what they advertised), so
// closing the link at once leaves destinations unreachable until their
// origins' newer seqnos arrive.
func drainRing(t *testing.T) *routingtest.Network {
	t.Helper()
	return drainRingWith(t, routing.Config{})
}

// drainRingWith is drainRing with the engines' configuration cfg.
func drainRingWith(t *testing.T, cfg routing.Config) *routingtest.Network {
	t.Helper()
	var names []string
	for i := range 8 {
		names = append(names, nodeName(i))
	}
	n := newNet(t, 3, cfg, names...)
	n.Step = 10 * time.Millisecond
	for i := range names {
		cost := routing.Metric(100)
		if i == 0 {
			cost = 10
		}
		mustLink(t, n, names[i], names[(i+1)%len(names)], cost)
	}
	quiet(t, n)
	n.RunFor(time.Second)
	return n
}

// unreachable returns the (source, destination) pairs without a route.
func unreachable(n *routingtest.Network) [][2]string {
	var out [][2]string
	for _, s := range n.Names() {
		for _, d := range n.Names() {
			if s == d {
				continue
			}
			if _, ok := n.Engine(s).Lookup(d); !ok {
				out = append(out, [2]string{s, d})
			}
		}
	}
	return out
}

// via counts the destinations node routes through next.
func via(n *routingtest.Network, node, next string) int {
	c := 0
	for _, d := range n.Names() {
		if h, ok := n.Engine(node).NextHop(d); ok && h == next {
			c++
		}
	}
	return c
}

// stepAllReachable steps n one round at a time for d, failing at the
// first round that leaves a pair without a route (or a loop).
func stepAllReachable(t *testing.T, n *routingtest.Network, d time.Duration, what string) {
	t.Helper()
	for end := n.Now.Add(d); n.Now.Before(end); {
		stepChecked(t, n, 1)
		if lost := unreachable(n); len(lost) > 0 {
			t.Fatalf("%s: at round %d, %d pairs without a route, e.g. %v", what, n.Round, len(lost), lost[0])
		}
	}
}

// TestCloseWithoutDrainLosesRoutes shows what the drain is for: on the
// ring of drainRing, closing the cheap link at once leaves some pairs
// without a route for a while.
func TestCloseWithoutDrainLosesRoutes(t *testing.T) {
	n := drainRing(t)
	if err := n.Unlink("n0000", "n0001"); err != nil {
		t.Fatal(err)
	}
	worst := 0
	for range 100 { // a second
		stepChecked(t, n, 1)
		worst = max(worst, len(unreachable(n)))
	}
	if worst == 0 {
		t.Fatal("no pair lost its route when the link closed: the ring does not show the loss the drain avoids")
	}
	if lost := unreachable(n); len(lost) > 0 {
		t.Fatalf("%d pairs still without a route a second later, e.g. %v", len(lost), lost[0])
	}
	t.Logf("at worst %d pairs without a route after the link closed", worst)
}

// TestDrainMovesRoutesThenCloses: n0000 drains its link to n0001. Its
// routes through n0001 move to the other way round the ring, n0001 sees
// the drain (n0000's own route retracted) and moves its routes through
// n0000 too, and no pair is without a route at any round; once nothing
// routes through the link, closing it loses no pair either.
func TestDrainMovesRoutesThenCloses(t *testing.T) {
	n := drainRing(t)
	a, b := "n0000", "n0001"
	before, beforeB := via(n, a, b), via(n, b, a)
	if before < 2 || beforeB < 2 {
		t.Fatalf("%d and %d destinations through the cheap link: the ring does not route over it", before, beforeB)
	}
	left := n.Engine(a).Drain(n.Now, a+"x") // no such neighbour
	if left != 0 {
		t.Fatalf("Drain of a neighbour without a link: %d, want 0", left)
	}
	n.Do(a, func(e *routing.Engine) { left = e.Drain(n.Now, b) })
	if left == 0 {
		t.Fatal("every route left the drained link at once, though the other way is not feasible")
	}
	if local, _ := n.Engine(a).Draining(b); !local {
		t.Fatal("Draining does not report the drain")
	}
	start := n.Now
	for {
		stepAllReachable(t, n, 100*time.Millisecond, "draining")
		n.Do(a, func(e *routing.Engine) { left = e.Drain(n.Now, b) })
		if left == 0 && via(n, b, a) == 0 {
			break
		}
		if n.Now.Sub(start) > 10*time.Second {
			t.Fatalf("after %v of drain, %d destinations still through the link at %s, %d at %s", n.Now.Sub(start), left, a, via(n, b, a), b)
		}
	}
	if _, peer := n.Engine(b).Draining(a); !peer {
		t.Fatalf("%s does not see the drain", b)
	}
	t.Logf("drained in %v: %d and %d destinations moved off the link", n.Now.Sub(start), before, beforeB)
	stepAllReachable(t, n, time.Second, "drained")
	if err := n.Unlink(a, b); err != nil {
		t.Fatal(err)
	}
	stepAllReachable(t, n, 2*time.Second, "closed after the drain")
}

// TestUndrainRestoresRoutes: a drain that is cancelled gives the link its
// routes back on both sides, and the neighbour no longer sees a drain.
func TestUndrainRestoresRoutes(t *testing.T) {
	n := drainRing(t)
	a, b := "n0000", "n0001"
	before, beforeB := via(n, a, b), via(n, b, a)
	n.Do(a, func(e *routing.Engine) { e.Drain(n.Now, b) })
	stepAllReachable(t, n, 3*time.Second, "draining")
	if via(n, a, b) != 0 || via(n, b, a) != 0 {
		t.Fatalf("after 3 s of drain, %d and %d destinations through the link", via(n, a, b), via(n, b, a))
	}
	n.Do(a, func(e *routing.Engine) { e.Undrain(n.Now, b) })
	stepAllReachable(t, n, 10*time.Second, "undrained")
	if local, peer := n.Engine(a).Draining(b); local || peer {
		t.Fatalf("%s still drains (%v, %v)", a, local, peer)
	}
	if local, peer := n.Engine(b).Draining(a); local || peer {
		t.Fatalf("%s still sees a drain (%v, %v)", b, local, peer)
	}
	if got, gotB := via(n, a, b), via(n, b, a); got != before || gotB != beforeB {
		t.Fatalf("after the drain ended, %d and %d destinations through the link, want %d and %d as before", got, gotB, before, beforeB)
	}
}

// TestPeerDrainDoesNotRetract: the retraction of a neighbour's own route
// (its drain) keeps every route through it usable: a neighbour that is
// the only way to a destination stays the way to it, and a neighbour
// drained by its peer keeps a route to itself.
func TestPeerDrainDoesNotRetract(t *testing.T) {
	n := newNet(t, 5, routing.Config{}, "a", "b", "c")
	mustLink(t, n, "a", "b", 10)
	mustLink(t, n, "b", "c", 10)
	quiet(t, n)
	n.Do("b", func(e *routing.Engine) { e.Drain(n.Now, "a") })
	n.RunFor(3 * time.Second)
	if _, peer := n.Engine("a").Draining("b"); !peer {
		t.Fatal("a does not see b's drain")
	}
	for _, d := range []string{"b", "c"} {
		if h, ok := n.Engine("a").NextHop(d); !ok || h != "b" {
			t.Fatalf("a's route to %s during b's drain: %q, %v; want through b", d, h, ok)
		}
	}
	if h, ok := n.Engine("b").NextHop("a"); !ok || h != "a" {
		t.Fatalf("b's route to a during its drain: %q, %v", h, ok)
	}
	left := 0
	n.Do("b", func(e *routing.Engine) { left = e.Drain(n.Now, "a") })
	if left != 1 {
		t.Fatalf("Drain reports %d destinations through a, want 1 (a itself)", left)
	}
}
