package routing_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// sizes returns the graph size to test: small in -short mode, at most
// twice that under the race detector (which slows the engine about
// tenfold), full otherwise.
func sizes(short, full int) int {
	switch {
	case testing.Short():
		return short
	case raceEnabled:
		return min(full, 2*short)
	}
	return full
}

func propertySpecs() map[string]graphSpec {
	return map[string]graphSpec{
		"sparse": {nodes: sizes(150, 1000), avgDegree: 3, seed: 11},
		"dense":  {nodes: sizes(100, 300), avgDegree: 12, seed: 12},
		"leaves": {nodes: sizes(120, 500), avgDegree: 3, leafFrac: 0.3, seed: 13},
	}
}

// TestPropertyColdStart: from cold start, routing is loop-free at every
// round and ends equal to Dijkstra's shortest paths.
func TestPropertyColdStart(t *testing.T) {
	for name, spec := range propertySpecs() {
		t.Run(name, func(t *testing.T) {
			n := buildRandom(t, spec, propCfg())
			rounds := runChecked(t, n, 2000)
			checkShortest(t, n, 0)
			t.Logf("%d nodes converged in %d rounds, %d messages", spec.nodes, rounds, n.Counters.Sent)
		})
	}
}

// TestPropertyCostChanges: random cost changes (up and down) reconverge to
// exact shortest paths without loops.
func TestPropertyCostChanges(t *testing.T) {
	spec := graphSpec{nodes: sizes(100, 400), avgDegree: 4, seed: 21}
	n := buildRandom(t, spec, propCfg())
	runChecked(t, n, 2000)
	r := rand.New(rand.NewPCG(5, 5))
	for range 3 {
		g := n.Graph()
		for range spec.nodes / 5 {
			a := n.Names()[r.IntN(len(n.Names()))]
			nbs := slices.Sorted(maps.Keys(g[a]))
			if len(nbs) == 0 {
				continue
			}
			b := nbs[r.IntN(len(nbs))]
			if err := n.SetCost(a, b, randomCost(r)*routing.Metric(1+r.IntN(3))); err != nil {
				t.Fatal(err)
			}
		}
		runChecked(t, n, 2000)
		checkShortest(t, n, 0)
	}
}

// TestPropertyHysteresis: with a hysteresis margin, routes stay within the
// margin per hop of the shortest path once refreshes have carried small
// metric changes (which are not sent as triggered updates).
func TestPropertyHysteresis(t *testing.T) {
	const margin = 30
	spec := graphSpec{nodes: sizes(80, 200), avgDegree: 5, seed: 31}
	cfg := routing.Config{Hysteresis: margin, UpdateInterval: 500 * time.Millisecond}
	n := buildRandom(t, spec, cfg)
	r := rand.New(rand.NewPCG(6, 6))
	for range 4 {
		stepChecked(t, n, 40)
		g := n.Graph()
		for _, a := range n.Names() {
			for _, b := range slices.Sorted(maps.Keys(g[a])) {
				if c := g[a][b]; a < b && r.IntN(3) == 0 {
					d := routing.Metric(r.IntN(2 * margin))
					if err := n.SetCost(a, b, max(10, c+d-margin)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	// The periodic refresh never lets the network fall quiet: give it
	// time for small changes to travel the diameter (about 8 hops).
	stepChecked(t, n, int(12*cfg.UpdateInterval/n.Step))
	checkShortest(t, n, margin)
}

// TestPropertyNodeDeath: after a node dies every other node marks it
// unreachable within a bounded number of rounds, metrics toward it never
// grow past the longest pre-death distance plus one link (no counting to
// infinity), and the survivors reconverge to shortest paths.
func TestPropertyNodeDeath(t *testing.T) {
	for name, spec := range map[string]graphSpec{
		"sparse": {nodes: sizes(150, 1000), avgDegree: 3, seed: 41},
		"dense":  {nodes: sizes(100, 300), avgDegree: 10, seed: 42},
	} {
		t.Run(name, func(t *testing.T) {
			n := buildRandom(t, spec, propCfg())
			runChecked(t, n, 2000)
			victim := busiest(n)
			var worst routing.Metric
			depth := 0 // longest route toward victim, in hops
			for _, s := range n.Names() {
				if r, ok := n.Engine(s).Lookup(victim); ok {
					worst = max(worst, r.Metric)
					depth = max(depth, r.Hops)
				}
			}
			limit := worst + 2*209
			n.Kill(victim)
			rounds := 0
			for {
				stepChecked(t, n, 1)
				rounds++
				still := 0
				for _, s := range n.Names() {
					if r, ok := n.Engine(s).Lookup(victim); ok {
						still++
						if r.Metric > limit {
							t.Fatalf("round %d: %s has metric %d to dead %s (limit %d): counting to infinity", rounds, s, r.Metric, victim, limit)
						}
					}
				}
				if still == 0 {
					break
				}
				if bound := deathBound(depth); rounds > bound {
					t.Fatalf("%d nodes still reach dead %s after %d rounds (bound 3×depth+2 = %d, depth %d)", still, victim, rounds, bound, depth)
				}
			}
			t.Logf("dead node %s unreachable everywhere after %d rounds (routes toward it were up to %d hops)", victim, rounds, depth)
			runChecked(t, n, 2000)
			checkShortest(t, n, 0)
		})
	}
}

// deathBound is the number of rounds (one-round delivery) within which
// every node must mark a dead node unreachable, given depth, the longest
// route toward it (in hops) before it died. The retraction front moves
// down the routing tree at least one hop every two rounds (urgent updates
// are coalesced over a few milliseconds, which can cost a round); nodes
// that meanwhile switch to feasible but stale alternates are caught by the
// same front. Measured on random graphs: at most 2×depth+3.
func deathBound(depth int) int { return 3*depth + 2 }

// TestPropertyPartitionHeal: a partition leaves each side with shortest
// paths inside it and the other side unreachable; healing reconverges.
func TestPropertyPartitionHeal(t *testing.T) {
	spec := graphSpec{nodes: sizes(150, 500), avgDegree: 3.5, seed: 51}
	n := buildRandom(t, spec, propCfg())
	runChecked(t, n, 2000)
	names := n.Names()
	cut := n.Partition(names[:len(names)/2], names[len(names)/2:])
	if len(cut) == 0 {
		t.Fatal("partition cut no link")
	}
	runChecked(t, n, 2000)
	checkShortest(t, n, 0)
	if _, ok := n.Engine(names[0]).Lookup(names[len(names)-1]); ok {
		t.Fatal("node reachable across the partition")
	}
	for _, ed := range cut {
		if err := n.Relink(ed.A, ed.B); err != nil {
			t.Fatal(err)
		}
	}
	runChecked(t, n, 2000)
	checkShortest(t, n, 0)
}

// TestPropertyLossyNetwork: with 20% loss, delays and reordering, routing
// stays loop-free, and once the loss stops, periodic refreshes and seqno
// request retries bring every table to the shortest paths.
func TestPropertyLossyNetwork(t *testing.T) {
	spec := graphSpec{nodes: sizes(60, 200), avgDegree: 4, seed: 61}
	cfg := routing.Config{Hysteresis: routing.NoHysteresis, UpdateInterval: time.Second}
	n := buildRandom(t, spec, cfg)
	n.DropRate, n.MaxDelay = 0.2, 3
	r := rand.New(rand.NewPCG(8, 8))
	for range 40 {
		stepChecked(t, n, 1)
	}
	names := n.Names()
	for range 3 {
		victim := names[1+r.IntN(len(names)-1)]
		g := n.Graph()
		for _, b := range slices.Sorted(maps.Keys(g[victim])) {
			if r.IntN(2) == 0 {
				_ = n.Unlink(victim, b)
			}
		}
		for range 40 {
			stepChecked(t, n, 1)
		}
	}
	// Loss stops and delivery is in order again, as on a control stream.
	// (Reordering is safe but makes stale metrics look unfeasible, which
	// costs seqno requests.) Periodic refreshes keep a large network from
	// ever falling quiet: step through enough of them for retries and
	// refreshes to repair every loss.
	n.DropRate, n.MaxDelay = 0, 0
	stepChecked(t, n, int(8*cfg.UpdateInterval/n.Step))
	checkShortest(t, n, 0)
}

// busiest returns the node with the most links (the most disruptive one to
// kill).
func busiest(n *routingtest.Network) string {
	best, deg := "", -1
	g := n.Graph()
	for _, s := range n.Names() {
		if len(g[s]) > deg {
			best, deg = s, len(g[s])
		}
	}
	return best
}

// diameterHops is the largest hop distance between two nodes of the live
// graph.
func diameterHops(n *routingtest.Network) int {
	g := n.Graph()
	diam := 0
	for _, s := range n.Names() {
		dist := map[string]int{s: 0}
		queue := []string{s}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for v := range g[u] {
				if _, seen := dist[v]; !seen {
					dist[v] = dist[u] + 1
					diam = max(diam, dist[v])
					queue = append(queue, v)
				}
			}
		}
	}
	return diam
}

// TestPropertyHysteresisConvergesToShortest: with the default hysteresis
// margin (20 units, two links at the 10-unit floor), routes still end
// exactly on the shortest paths: a route better by less than the margin
// is taken once it has stayed better for an update interval. Graphs with
// equal link costs (where a path two hops longer sits at the margin) and
// with random costs.
func TestPropertyHysteresisConvergesToShortest(t *testing.T) {
	for name, equal := range map[string]bool{"equal": true, "random": false} {
		t.Run(name, func(t *testing.T) {
			spec := graphSpec{nodes: sizes(80, 300), avgDegree: 3, seed: 91}
			cfg := routing.Config{UpdateInterval: 500 * time.Millisecond, Certifier: plainCertifier{}}
			n := buildRandom(t, spec, cfg)
			if equal {
				setEqualCosts(t, n)
			}
			// Small metric changes travel with the periodic refresh, one
			// hop per interval at worst: allow the diameter's worth twice.
			periods := 2 * (diameterHops(n) + 2)
			stepChecked(t, n, periods*int(cfg.UpdateInterval/n.Step))
			checkShortest(t, n, 0)
		})
	}
}

// setEqualCosts sets every link of n to the 10-unit floor, where a path
// two hops longer sits exactly at the default hysteresis margin.
func setEqualCosts(t *testing.T, n *routingtest.Network) {
	t.Helper()
	g := n.Graph()
	for _, a := range n.Names() {
		for _, b := range slices.Sorted(maps.Keys(g[a])) {
			if a < b {
				if err := n.SetCost(a, b, 10); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
