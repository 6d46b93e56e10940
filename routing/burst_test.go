package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// linkBoundNet is a mesh whose tables are several times what a link holds
// in flight (LinkBytes), with the engines' budget a quarter of it, the
// ratio of DefaultMaxBurstBytes to the in-memory links' bound.
func linkBoundNet(t *testing.T, nodes, linkBytes int) (*routingtest.Network, routing.Config) {
	t.Helper()
	cfg := propCfg()
	cfg.UpdateInterval = time.Second // summaries, and expiry after 3.5 s
	cfg.MaxBurstBytes = linkBytes / 4
	n := buildRandom(t, graphSpec{nodes: nodes, avgDegree: 3, seed: 91}, cfg)
	n.LinkBytes = linkBytes
	n.LinkMessages = 256
	return n, cfg
}

// checkAllReach fails unless every node has a route to every other.
func checkAllReach(t *testing.T, n *routingtest.Network, when string) {
	t.Helper()
	missing, short := 0, 0
	for _, s := range n.Names() {
		got := 0
		for _, d := range n.Names() {
			if _, ok := n.Engine(s).Lookup(d); ok && d != s {
				got++
			}
		}
		if got < len(n.Names())-1 {
			short++
			missing += len(n.Names()) - 1 - got
		}
	}
	if short > 0 {
		t.Fatalf("%s: %d of %d nodes miss %d routes in all (%d messages dropped by full links)",
			when, short, len(n.Names()), missing, n.Counters.Overflow)
	}
}

// A link drops what exceeds its control queue: whole tables and the answers
// to resend requests must be paced to what it takes, or what is dropped is
// asked for again and dropped again, and the routes that no summary
// refreshes expire. Here tables are about ten times a link's bound: the
// mesh converges to the shortest paths, no link overflows, and every node
// still reaches every other after a route expiry period.
func TestPacedUpdatesFitLinkBound(t *testing.T) {
	const linkBytes = 2 << 10
	n, cfg := linkBoundNet(t, sizes(300, 800), linkBytes)
	rounds, ok := n.RunUntilQuiet(2000)
	if !ok {
		t.Fatalf("not quiet after %d rounds", rounds)
	}
	t.Logf("quiet after %d rounds, %d messages, %d bytes, %d dropped by full links", rounds, n.Counters.Sent, n.Counters.Bytes, n.Counters.Overflow)
	checkAllReach(t, n, "converged")
	checkShortest(t, n, 0)
	// Past a route expiry period (3.5 s), with summaries and their repairs.
	n.RunFor(cfg.UpdateInterval * 9 / 2)
	checkAllReach(t, n, "after a route expiry period")
	checkShortest(t, n, 0)
	if n.Counters.Overflow > 0 {
		t.Fatalf("%d messages dropped by full links", n.Counters.Overflow)
	}
}

// A neighbour that lost every route we gave it (its link cut for longer
// than the route expiry) asks for the whole table again at the next
// summary: the answer goes in pieces a link takes, and the neighbour ends
// with every route, on the shortest paths, without a message lost to a
// full link.
func TestPacedRepairFitsLinkBound(t *testing.T) {
	const linkBytes = 2 << 10
	n, cfg := linkBoundNet(t, sizes(300, 800), linkBytes)
	n.LinkBytes, n.LinkMessages = 0, 0 // converge first
	if _, ok := n.RunUntilQuiet(2000); !ok {
		t.Fatal("not quiet")
	}
	n.LinkBytes, n.LinkMessages = linkBytes, 256
	hub := busiest(n)
	var peer string
	for nb := range n.Graph()[hub] {
		peer = max(peer, nb)
	}
	n.Cut(hub, peer, true)
	n.RunFor(cfg.UpdateInterval * 4) // past the route expiry: peer's routes from hub are gone
	n.Cut(hub, peer, false)
	// Five summary periods, then until quiet: at 800 nodes a repaired
	// route's better alternates take hold over a few more periods
	// (hysteresis), each paced at 512 bytes per 50 ms.
	n.RunFor(cfg.UpdateInterval * 5)
	if _, ok := n.RunUntilQuiet(2000); !ok {
		t.Fatal("not quiet after the repair")
	}
	checkAllReach(t, n, "repaired")
	checkShortest(t, n, 0)
	if n.Counters.Overflow > 0 {
		t.Fatalf("%d messages dropped by full links", n.Counters.Overflow)
	}
	if st := n.Engine(hub).Stats(); st.PacedBatches == 0 {
		t.Fatalf("%s answered %s's resend requests in one batch (%d updates out), want several", hub, peer, st.UpdatesOut)
	}
}
