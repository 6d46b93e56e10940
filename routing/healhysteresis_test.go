package routing_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// After a partition heals, every route reaches the shortest path with the
// default hysteresis, on links of equal cost. A node whose unfeasible
// route beat its own by no more than the hysteresis margin used to not
// ask for the seqno that would make it feasible, and stayed on a longer
// path for good once the answers went only to the nodes that asked
// (140–192 routes of 22,350 longer, 40 update intervals after the heal).
func TestPropertyPartitionHealWithHysteresisReachesShortest(t *testing.T) {
	if testing.Short() {
		t.Skip("three 150-node partitions and heals: about 90 s; skipped with -short")
	}
	for _, seed := range []int64{91, 51, 7} {
		spec := graphSpec{nodes: 150, avgDegree: 3.5, seed: seed}
		cfg := routing.Config{UpdateInterval: 500 * time.Millisecond, Certifier: plainCertifier{}}
		n := buildRandom(t, spec, cfg)
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
		periods := 2 * (diameterHops(n) + 2)
		stepChecked(t, n, periods*int(cfg.UpdateInterval/n.Step))
		names := n.Names()
		cut := n.Partition(names[:len(names)/2], names[len(names)/2:])
		stepChecked(t, n, periods*int(cfg.UpdateInterval/n.Step))
		for _, ed := range cut {
			if err := n.Relink(ed.A, ed.B); err != nil {
				t.Fatal(err)
			}
		}
		// 4 times the cold start's allowance, and past 16 update intervals
		stepChecked(t, n, 4*periods*int(cfg.UpdateInterval/n.Step))
		bad := 0
		g = n.Graph()
		for _, s := range n.Names() {
			ref := routingtest.ShortestPaths(g, n.IsLeaf, s)
			for _, d := range n.Names() {
				if d == s {
					continue
				}
				r, ok := n.Engine(s).Lookup(d)
				if p, want := ref[d]; ok && want && uint64(r.Metric) > p.Cost {
					bad++
				}
			}
		}
		t.Logf("seed %d: %d of %d routes longer than the shortest path %d update intervals after the heal", seed, bad, len(names)*(len(names)-1), 4*periods)
		if bad > 0 {
			t.Errorf("seed %d: %d routes longer than the shortest", seed, bad)
		}
	}
}
