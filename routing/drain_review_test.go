package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// bridge reports whether the link a–b is the only path between a and b.
func bridge(g map[string]map[string]routing.Metric, a, b string) bool {
	seen := map[string]bool{a: true}
	q := []string{a}
	for len(q) > 0 {
		x := q[0]
		q = q[1:]
		for y := range g[x] {
			if (x == a && y == b) || (x == b && y == a) || seen[y] {
				continue
			}
			seen[y] = true
			q = append(q, y)
		}
	}
	return !seen[b]
}

// busiestLink returns the link, not a bridge and between two nodes that
// are not leaves, that carries the most routes of its first end.
func busiestLink(n *routingtest.Network) (a, b string) {
	best := -1
	for _, s := range n.Names() {
		if n.IsLeaf(s) {
			continue
		}
		for _, d := range n.Names() {
			if _, ok := n.Graph()[s][d]; ok && !n.IsLeaf(d) && !bridge(n.Graph(), s, d) {
				if v := via(n, s, d); v > best {
					a, b, best = s, d, v
				}
			}
		}
	}
	return a, b
}

// checkTickAhead fails when some engine, just ticked at now, still asks
// to be ticked at or before now: its caller's tick loop would spin.
func checkTickAhead(t *testing.T, n *routingtest.Network, what string) {
	t.Helper()
	for _, s := range n.Names() {
		n.Do(s, func(e *routing.Engine) {
			e.Tick(n.Now)
			if nt := e.NextTick(); !nt.IsZero() && !nt.After(n.Now) {
				t.Fatalf("%s: %s's NextTick is %v from now after Tick(now): its tick loop spins", what, s, nt.Sub(n.Now))
			}
		})
	}
}

// TestDrainRandomGraphs: on random graphs, while a link drains (and a
// leaf's only link, seed 29, whose peer has nowhere to move), every
// engine's next tick after Tick(now) is after now, next hops stay
// loop-free and every pair has a route at every round (nodes away from
// the link keep the route with the drain's newer seqno rather than
// move to a longer one at the old seqno, which the nodes behind them
// could not take).
func TestDrainRandomGraphs(t *testing.T) {
	seeds := []int64{29}
	for s := int64(1); s <= int64(sizes(4, 30)); s++ {
		if s != 29 {
			seeds = append(seeds, s)
		}
	}
	for _, seed := range seeds {
		n := buildRandom(t, graphSpec{nodes: 30, avgDegree: 3, leafFrac: 0.1, seed: seed}, routing.Config{})
		n.Step = 10 * time.Millisecond
		quiet(t, n)
		n.RunFor(2 * time.Second)
		a, b := busiestLink(n)
		if seed == 29 {
			a, b = "n0009", "n0002" // n0009's only link
		}
		n.Do(a, func(e *routing.Engine) { e.Drain(n.Now, b) })
		for i := range 300 {
			stepChecked(t, n, 1)
			checkTickAhead(t, n, "seed "+nodeName(int(seed))+" drain "+a+"-"+b)
			if l := unreachable(n); len(l) > 0 {
				t.Fatalf("seed %d, drain %s-%s: at round %d, %d pairs without a route, e.g. %v", seed, a, b, i+1, len(l), l[0])
			}
			n.Do(a, func(e *routing.Engine) { e.Drain(n.Now, b) })
		}
	}
}

// toggleDrains has toggler drain its link to victim every `every` for
// `hold`, then end the drain, for d (simulated), and returns how many of
// its drains victim took, and victim's stats at the end.
func toggleDrains(t *testing.T, n *routingtest.Network, victim, toggler string, every, hold, d time.Duration) (taken int, st routing.Stats) {
	t.Helper()
	start, end := n.Now, n.Now.Add(d)
	for n.Now.Before(end) {
		if since := n.Now.Sub(start) % every; since < n.Step {
			n.Do(toggler, func(e *routing.Engine) { e.Drain(n.Now, victim) })
		} else if since >= hold && since < hold+n.Step {
			n.Do(toggler, func(e *routing.Engine) { e.Undrain(n.Now, victim) })
		}
		_, was := n.Engine(victim).Draining(toggler)
		n.StepRound()
		if _, is := n.Engine(victim).Draining(toggler); is && !was {
			taken++
		}
	}
	return taken, n.Engine(victim).Stats()
}

// TestPeerDrainToggleDamped: a neighbour alternating drain and no drain
// every 100 ms for ten minutes (simulated) has its drains taken by its
// peer at most once per UpdateInterval at first, then at gaps doubling
// up to 64 update intervals: each one taken walks the peer's table and
// draws seqno requests to the origins behind, which raise, and their
// new seqnos travel through the mesh (TestAttackMemberDrainToggleDrawsMeshWork).
// Taken once per UpdateInterval: 150 drains in the ten minutes, and
// 10,050 requests sent by the victim against 5,006.
func TestPeerDrainToggleDamped(t *testing.T) {
	n := drainRing(t)
	victim, toggler := "n0000", "n0001"
	r0 := n.Engine(victim).Stats().RequestsOut
	taken, st := toggleDrains(t, n, victim, toggler, 200*time.Millisecond, 100*time.Millisecond, 10*time.Minute)
	// At 0, 4, 12, 28, 60, 124, 252 and 508 s.
	if taken > 8 {
		t.Errorf("%s took %d drains of %s in ten minutes of drains every 200 ms, want at most 8", victim, taken, toggler)
	}
	if st.DampedDrains == 0 {
		t.Error("no drain counted as damped")
	}
	if l := unreachable(n); len(l) > 0 {
		t.Fatalf("%d pairs without a route, e.g. %v", len(l), l[0])
	}
	t.Logf("%s took %d drains, damped %d, sent %d requests (its own and forwarded)", victim, taken, st.DampedDrains, st.RequestsOut-r0)
}

// TestPeerDrainEvery30sTaken: a node drains a peer again no sooner than
// 30 s after the last drain it ended without closing the link
// (node/discoverydrain.go); every such drain is taken, however many, with
// the default UpdateInterval and longer ones (at 10 s the gap doubled:
// a drain 30 s after the last was refused).
func TestPeerDrainEvery30sTaken(t *testing.T) {
	for _, ui := range []time.Duration{0, 10 * time.Second, 30 * time.Second} {
		for _, hold := range []time.Duration{100 * time.Millisecond, 5 * time.Second} {
			n := drainRingWith(t, routing.Config{UpdateInterval: ui})
			victim, drainer := "n0000", "n0001"
			taken, st := toggleDrains(t, n, victim, drainer, 30*time.Second+hold, hold, 5*time.Minute)
			if st.DampedDrains != 0 || taken < 9 {
				t.Errorf("UpdateInterval %v, drains lasting %v, each 30 s after the last ended: %s took %d in 5 minutes, damped %d; want all taken", ui, hold, victim, taken, st.DampedDrains)
			}
		}
	}
}
