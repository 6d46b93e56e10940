package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
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
		setEqualCosts(t, n)
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
		checkShortest(t, n, 0)
	}
}
