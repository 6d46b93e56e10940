package routing_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// graphSpec describes a seeded random connected graph.
type graphSpec struct {
	nodes     int
	avgDegree float64 // approximate; at least 2 (a random spanning tree)
	leafFrac  float64 // fraction of nodes configured as leaves
	seed      int64
}

func nodeName(i int) string { return fmt.Sprintf("n%04d", i) }

// randomCost draws a link cost in 10..209 (the link layer's floor is 10).
func randomCost(r *rand.Rand) routing.Metric { return routing.Metric(10 + r.IntN(200)) }

// buildRandom creates the nodes and links of spec: a random spanning tree
// (so the graph starts connected) plus random chords.
func buildRandom(t testing.TB, spec graphSpec, cfg routing.Config) *routingtest.Network {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(spec.seed), 99))
	n := routingtest.New(spec.seed)
	for i := range spec.nodes {
		c := cfg
		c.Self = nodeName(i)
		c.Seed = spec.seed*7919 + int64(i)
		c.Leaf = i > 0 && r.Float64() < spec.leafFrac
		if err := n.AddNode(c); err != nil {
			t.Fatal(err)
		}
	}
	edges := map[routingtest.Edge]bool{}
	link := func(a, b int) {
		ed := routingtest.MakeEdge(nodeName(a), nodeName(b))
		if a == b || edges[ed] {
			return
		}
		edges[ed] = true
		mustLink(t, n, ed.A, ed.B, randomCost(r))
	}
	// Leaves hang off routers so that routers stay connected.
	var routers []int
	for i := range spec.nodes {
		if i == 0 {
			routers = append(routers, i)
			continue
		}
		p := routers[r.IntN(len(routers))]
		link(p, i)
		if !n.IsLeaf(nodeName(i)) {
			routers = append(routers, i)
		}
	}
	extra := int(float64(spec.nodes)*spec.avgDegree/2) - (spec.nodes - 1)
	for range extra {
		a := routers[r.IntN(len(routers))]
		b := r.IntN(spec.nodes)
		link(a, b)
	}
	return n
}

// propCfg is the engine configuration for convergence checks: triggered
// updates only (the periodic refresh is far away), exact metrics, and
// certified origins (with a trivial certifier).
func propCfg() routing.Config {
	return routing.Config{Hysteresis: routing.NoHysteresis, UpdateInterval: time.Hour, Certifier: plainCertifier{}}
}

// checkLoopFree follows next hops from every node toward each destination
// in dests (all nodes if nil) and fails if a walk revisits a node, uses a
// link that is down, or transits a leaf.
func checkLoopFree(t testing.TB, n *routingtest.Network, dests []string) {
	t.Helper()
	names := n.Names()
	if dests == nil {
		dests = names
	}
	idx := make(map[string]int, len(names))
	for i, s := range names {
		idx[s] = i
	}
	g := n.Graph()
	state := make([]int, len(names))
	next := func(u int, d string) int {
		nh, ok := n.Engine(names[u]).NextHop(d)
		if !ok {
			return -1
		}
		v, live := idx[nh]
		if _, up := g[names[u]][nh]; !live || !up {
			t.Fatalf("round %d: %s routes to %s via %q, not a live neighbour", n.Round, names[u], d, nh)
		}
		if nh != d && n.IsLeaf(nh) {
			t.Fatalf("round %d: %s routes to %s through leaf %s", n.Round, names[u], d, nh)
		}
		return v
	}
	for _, d := range dests {
		di, live := idx[d]
		if !live {
			di = -2 // a dead node: every walk must end at an unreachable
		}
		clear(state)
		for s := range names {
			u := s
			for u >= 0 && u != di && state[u] == 0 {
				state[u] = s + 1
				v := next(u, d)
				if v >= 0 && state[v] == s+1 {
					t.Fatalf("round %d: routing loop toward %s through %s", n.Round, d, names[v])
				}
				u = v
			}
			for u := s; u >= 0 && state[u] == s+1; u = next(u, d) {
				state[u] = -1
			}
		}
	}
}

// checkShortest compares every node's table with Dijkstra on the live
// graph. Each route's metric must lie within slack per hop of the shortest
// path (slack 0: exactly equal), its hop count must match the next-hop
// chain, and unreachable nodes must be reported unreachable.
func checkShortest(t testing.TB, n *routingtest.Network, slack routing.Metric) {
	t.Helper()
	g := n.Graph()
	bad := 0
	for _, s := range n.Names() {
		ref := routingtest.ShortestPaths(g, n.IsLeaf, s)
		e := n.Engine(s)
		if st, reachable := e.Stats(), reachableRoutes(e); st.Reachable != reachable {
			t.Errorf("%s: Stats.Reachable %d, %d routes reachable", s, st.Reachable, reachable)
			bad++
		}
		for _, d := range n.Names() {
			if d == s {
				continue
			}
			r, ok := e.Lookup(d)
			p, want := ref[d]
			switch {
			case ok != want:
				t.Errorf("%s->%s reachable=%v, reference says %v (%+v)", s, d, ok, want, r)
				bad++
			case ok && (uint64(r.Metric) < p.Cost || uint64(r.Metric) > p.Cost+uint64(slack)*uint64(p.Hops)):
				t.Errorf("%s->%s metric %d via %s, shortest %d (%d hops, slack %d/hop)", s, d, r.Metric, r.NextHop, p.Cost, p.Hops, slack)
				bad++
			case ok && chainHops(n, s, d) != r.Hops:
				t.Errorf("%s->%s claims %d hops, next-hop chain has %d", s, d, r.Hops, chainHops(n, s, d))
				bad++
			}
			if bad > 10 {
				t.Fatal("too many mismatches")
			}
		}
	}
}

// reachableRoutes counts the reachable routes of e's table.
func reachableRoutes(e *routing.Engine) int {
	n := 0
	for _, r := range e.Routes() {
		if r.Reachable {
			n++
		}
	}
	return n
}

func chainHops(n *routingtest.Network, s, d string) int {
	h := 0
	for u := s; u != d && h <= len(n.Names()); h++ {
		r, _ := n.Engine(u).Lookup(d)
		u = r.NextHop
	}
	return h
}

// runChecked steps until quiet, checking loop freedom after every round.
func runChecked(t testing.TB, n *routingtest.Network, max int) int {
	t.Helper()
	for i := 1; i <= max; i++ {
		stepChecked(t, n, 1)
		if n.Quiet() {
			return i
		}
	}
	t.Fatalf("not quiet after %d rounds", max)
	return max
}

// stepChecked steps rounds rounds, checking after each that next hops
// toward every destination whose route changed are loop-free. (Next hops
// toward other destinations did not move, and were loop-free before.)
func stepChecked(t testing.TB, n *routingtest.Network, rounds int) {
	t.Helper()
	if !n.TrackChanged {
		// What changed before is not known: check every destination.
		checkLoopFree(t, n, nil)
		n.TrackChanged = true
	}
	for range rounds {
		n.StepRound()
		checkLoopFree(t, n, n.TakeChanged())
	}
}
