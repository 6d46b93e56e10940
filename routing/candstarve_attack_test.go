package routing

import (
	"testing"
	"time"
)

// TestAttackCandidateResetStarvesShorterRoute: n routes to o through a
// (metric 200); its link to b gets cheaper, so that b offers 185, better
// by less than the hysteresis (20): n takes b once b has stayed better
// for an update interval (4 s). m, a neighbour of n with a valid
// certificate, every 2 s alternately tells n a route at 174 (184 through m) at the seqno
// n holds (which becomes the candidate, restarting the wait) and takes it
// back (b becomes the candidate again, restarting the wait again): n
// never moved to b in 30 s. Now the wait is how long the route selected
// has stayed beaten within the margin, by whichever routes, so m's
// offers do not restart it: n moves off a within an update interval
// (and to b, the shortest honest route, once m's offer is withdrawn).
func TestAttackCandidateResetStarvesShorterRoute(t *testing.T) {
	order := []string{"o", "a", "b", "n"}
	engines := certifiedEngines(t, order...)
	now := ct0
	link := func(x, y string, c Metric) { linkBoth(engines, now, x, y, c) }
	link("o", "a", 100)
	link("a", "n", 100)
	link("o", "b", 100)
	link("b", "n", 300)
	n := engines["n"]
	n.LinkUp(now, "m", 10, false)
	step := func() {
		now = now.Add(5 * time.Millisecond)
		tickDue(now, order, engines)
		deliverAll(t, now, order, engines, nil)
	}
	for i := 0; i < 10*200; i++ {
		step()
	}
	if r, ok := n.Lookup("o"); !ok || r.NextHop != "a" {
		t.Fatalf("before: n routes o as %+v, want through a", r)
	}
	engines["n"].LinkCost(now, "b", 85)
	engines["b"].LinkCost(now, "n", 85)

	const secs = 30
	first := time.Duration(-1)
	for i := 0; i < secs*200; i++ {
		if i%400 == 0 || i%400 == 200 {
			r, _ := n.Lookup("o")
			en := entry{kind: kindUpdate, origin: "o", seqno: r.Seqno, metric: 174, hops: 1}
			if i%400 == 200 {
				en.metric = DefaultInfinity
			}
			if err := n.Receive(now, "m", encodeMessage([]entry{en})); err != nil {
				t.Fatal(err)
			}
		}
		step()
		if r, ok := n.Lookup("o"); ok && r.NextHop == "b" && first < 0 {
			first = time.Duration(i+1) * 5 * time.Millisecond
		}
	}
	r, _ := n.Lookup("o")
	t.Logf("after %d s of m's alternation: n routes o as %+v (first through b after %v; -1: never)", secs, r, first)
	if first < 0 {
		t.Errorf("n never moved to b (metric 185, against 200 through a) in %d s: m's alternation every 2 s restarts the candidate's wait", secs)
	}
}
