package simulate

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/circuitmesh/circuitmesh/routing"
)

// TestDenseCostsMatchShortestPaths: the numbered Dijkstra RouteStretch
// uses gives the costs of shortestPaths (routingtest's reference) on
// random graphs with asymmetric costs and unreachable parts.
func TestDenseCostsMatchShortestPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		n := 2 + rng.IntN(60)
		g := metricGraph{}
		for i := range n {
			g[fmt.Sprint("n", i)] = map[string]routing.Metric{}
		}
		for range rng.IntN(3 * n) {
			u, v := fmt.Sprint("n", rng.IntN(n)), fmt.Sprint("n", rng.IntN(n))
			if u != v {
				g[u][v] = routing.Metric(10 + rng.IntN(100))
			}
		}
		d := g.dense()
		dist := make([]uint64, len(d.adj))
		var h costHeap
		for src := range g {
			d.costs(d.index[src], dist, &h)
			want := shortestPaths(g, src)
			for v, i := range d.index {
				p, ok := want[v]
				switch {
				case v == src:
					if dist[i] != 0 {
						t.Fatalf("round %d: %s to itself costs %d", round, src, dist[i])
					}
				case !ok && dist[i] != unreached, ok && dist[i] != p.Cost:
					t.Fatalf("round %d: %s→%s costs %d, the reference %d (reached %v)", round, src, v, dist[i], p.Cost, ok)
				}
			}
		}
	}
}
