package routing_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestRefreshIsSmallAndRepairsLoss: once converged, the periodic refresh
// costs a small fraction of sending whole tables; when updates are lost,
// the summaries that follow find the difference and the routes are
// repaired to the shortest paths without any full table being sent.
func TestRefreshIsSmallAndRepairsLoss(t *testing.T) {
	spec := graphSpec{nodes: sizes(100, 300), avgDegree: 3, seed: 71}
	cfg := propCfg()
	cfg.UpdateInterval = time.Second
	n := buildRandom(t, spec, cfg)
	runChecked(t, n, 2000)
	checkShortest(t, n, 0)

	directed := 0
	for _, nbs := range n.Graph() {
		directed += len(nbs)
	}
	// A table entry is at least 13 bytes (update of a 5-byte name).
	table := int64(directed * spec.nodes * 13)
	b0 := n.Counters.Bytes
	stepChecked(t, n, int(4*cfg.UpdateInterval/n.Step))
	perInterval := (n.Counters.Bytes - b0) / 4
	t.Logf("steady refresh: %d bytes per interval, whole tables would be at least %d", perInterval, table)
	if perInterval > table/10 {
		t.Fatalf("steady refresh sends %d bytes per interval, over a tenth of whole tables (%d)", perInterval, table)
	}

	// Lose 30% of messages while link costs change, then stop losing.
	r := rand.New(rand.NewPCG(7, 7))
	n.DropRate = 0.3
	for range 3 {
		g := n.Graph()
		names := n.Names()
		for range spec.nodes / 5 {
			a := names[r.IntN(len(names))]
			nbs := slices.Sorted(maps.Keys(g[a]))
			if err := n.SetCost(a, nbs[r.IntN(len(nbs))], randomCost(r)); err != nil {
				t.Fatal(err)
			}
		}
		stepChecked(t, n, 4)
	}
	n.DropRate = 0
	stepChecked(t, n, int(4*cfg.UpdateInterval/n.Step))
	checkShortest(t, n, 0)
}
