package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// staleRoutes counts the routes of n that differ from Dijkstra's shortest
// paths (metric or reachability) and returns the largest excess metric.
func staleRoutes(n *routingtest.Network) (count int, worst routing.Metric) {
	g := n.Graph()
	for _, s := range n.Names() {
		ref := routingtest.ShortestPaths(g, n.IsLeaf, s)
		for _, d := range n.Names() {
			if d == s {
				continue
			}
			r, ok := n.Engine(s).Lookup(d)
			p, want := ref[d]
			if ok != want || ok && uint64(r.Metric) != p.Cost {
				count++
				if ok && uint64(r.Metric) > p.Cost {
					worst = max(worst, routing.Metric(uint64(r.Metric)-p.Cost))
				}
			}
		}
	}
	return count, worst
}

// TestPropertyDelayedInOrder: with delivery delays that differ from
// message to message (so from link to link) but keep each link's order,
// as the control stream does, a cold start ends loop-free and quiet on
// exactly the shortest paths, with no periodic refresh to help.
func TestPropertyDelayedInOrder(t *testing.T) {
	spec := graphSpec{nodes: sizes(100, 200), avgDegree: 3, seed: 71}
	n := buildRandom(t, spec, propCfg())
	n.MaxDelay, n.InOrder = 2, true
	rounds := runChecked(t, n, 2000)
	checkShortest(t, n, 0)
	t.Logf("%d nodes converged in %d rounds, %d messages", spec.nodes, rounds, n.Counters.Sent)
}

// TestReorderedStaleRoutesLastUntilSummary: messages reordered on a link
// (which the control stream never does) can leave a node holding a
// neighbour's older, worse route for an origin after its newer one: the
// node may then select a longer path than the shortest, and nothing is
// sent to correct it until the neighbour's next summary, which shows the
// mismatch and draws a resend of the bucket. Here a cold start with
// reordering falls quiet on stale routes; they stay, with no message
// sent, until the first summaries (UpdateInterval, jittered down by at
// most an eighth); by one and a half intervals after the start every
// route is the shortest, though messages are still reordered.
func TestReorderedStaleRoutesLastUntilSummary(t *testing.T) {
	spec := graphSpec{nodes: sizes(100, 200), avgDegree: 3, seed: 72}
	cfg := propCfg()
	cfg.UpdateInterval = 10 * time.Second
	n := buildRandom(t, spec, cfg)
	n.MaxDelay = 2
	firstSummary := int(cfg.UpdateInterval-cfg.UpdateInterval/8) / int(n.Step)
	quiet := runChecked(t, n, firstSummary-1)
	stale, worst := staleRoutes(n)
	if stale == 0 {
		t.Fatalf("quiet after %d rounds with every route the shortest: no stale route to repair", quiet)
	}
	sent := n.Counters.Sent
	stepChecked(t, n, firstSummary-1-n.Round)
	if n.Counters.Sent != sent {
		t.Fatalf("%d messages sent between round %d and the first summary", n.Counters.Sent-sent, quiet)
	}
	if s, _ := staleRoutes(n); s != stale {
		t.Fatalf("stale routes went from %d to %d with no message", stale, s)
	}
	stepChecked(t, n, int(cfg.UpdateInterval*3/2/n.Step)-n.Round)
	checkShortest(t, n, 0)
	t.Logf("%d nodes quiet after %d rounds with %d of %d routes not the shortest (longer by up to %d), unchanged until round %d; all shortest at round %d",
		spec.nodes, quiet, stale, spec.nodes*(spec.nodes-1), worst, firstSummary-1, n.Round)
}
