package routing

import (
	"testing"
	"time"
)

// TestShorterRouteAtSeqnoHeldTaken: a node whose route took a newer seqno
// alone (not sent on: the nodes behind hold the route at the older one)
// moves to a shorter route at that older seqno when one comes, though
// its metric is above the least this node advertised at that seqno: the
// nodes behind get a lower metric at the seqno they hold. It kept the
// longer route for good before (38 units longer here; on the random
// graph of 200 nodes of TestPropertyCostChanges under -race, four routes
// stayed off the shortest paths once the network was quiet).
func TestShorterRouteAtSeqnoHeldTaken(t *testing.T) {
	e := newEngine(t, Config{Self: "s", UpdateInterval: time.Hour})
	e.LinkUp(t0, "p", 26, false)  // the shorter path's neighbour
	e.LinkUp(t0, "q", 201, false) // the longer path's
	e.LinkUp(t0, "y", 12, false)  // a node behind
	now := t0
	step := func(from string, p []byte) []entry {
		now = now.Add(time.Second)
		mustReceive(t, e, now, from, p)
		e.Tick(now)
		return sent(t, e.Ready(), "y")
	}
	step("p", update("d", 10, 315))             // via p at 341, advertised
	step("q", update("d", 10, 195))             // 396: not better
	step("p", update("d", 10, DefaultInfinity)) // p loses it: via q, (10, 396) advertised
	if r, ok := e.Lookup("d"); !ok || r.NextHop != "q" || r.Metric != 396 {
		t.Fatalf("after p's retraction: %+v, %v; want via q at 396", r, ok)
	}
	step("q", update("d", 11, 195)) // a newer seqno alone, not sent on
	toY := step("p", update("d", 10, 332))
	r, ok := e.Lookup("d")
	if !ok || r.NextHop != "p" || r.Metric != 358 {
		t.Fatalf("with p back at 332 (358 through it, 396 through q): %+v, %v; want via p at 358", r, ok)
	}
	if len(toY) != 1 || toY[0].seqno != 10 || toY[0].metric != 358 {
		t.Fatalf("y was sent %+v, want the route at seqno 10, metric 358", toY)
	}
}
