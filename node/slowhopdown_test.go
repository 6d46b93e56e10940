package node

import (
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestSlowLinkOnPathReportsNoPeerDown: on a line a-b-c-d, the cost of
// c's link to d rises to many times the path's (as a starved d's round
// trips make it), three times over. The metric c then advertises for d
// is beyond what b, which advertised d to a, may keep at d's seqno, so
// routing at b drops its only route and asks d for a new seqno, which
// brings it back within a round trip: d stayed reachable all along, and
// b's subscribers must not be told it went down (before, each rise was
// a PeerDown and a PeerUp). Then d closes: b's PeerDown for d must
// come, as no neighbour advertises d any more.
func TestSlowLinkOnPathReportsNoPeerDown(t *testing.T) {
	c := newCluster(t, false)
	c.build("a-b", "b-c", "c-d")
	c.waitRoute("a", "d", 3)
	b, cn := c.node("b"), c.node("c")
	ch, cancel, err := b.Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	// reach returns the PeerUp and PeerDown events about d published
	// so far (publishing is done by the time a route shows in Peer).
	reach := func() (evs []EventKind) {
		for {
			select {
			case ev := <-ch:
				if ev.Peer == "d" && (ev.Kind == PeerUp || ev.Kind == PeerDown) {
					evs = append(evs, ev.Kind)
				}
			default:
				return evs
			}
		}
	}

	for i, cost := range []links.Cost{1_000_000, links.MinCost, 3_000_000, links.MinCost, 6_000_000} {
		if err := cn.SetLinkCost("d", cost); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(patience)
		for p, _ := b.Peer("d"); !p.Reachable || p.Cost < cost || p.Cost > cost+1000; p, _ = b.Peer("d") {
			if time.Now().After(deadline) {
				t.Fatalf("change %d: b's route to d is %+v, not through c's link of cost %d", i, p, cost)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if evs := reach(); len(evs) != 0 {
		t.Errorf("b published %v about d, which stayed reachable through c", evs)
	}

	if err := cn.SetLinkCost("d", 0); err != nil {
		t.Fatal(err)
	}
	closed := time.Now()
	c.node("d").Close()
	for evs := reach(); !slices.Equal(evs, []EventKind{PeerDown}); evs = append(evs, reach()...) {
		if time.Since(closed) > patience {
			t.Fatalf("b published %v about d in the %v after d closed, want one PeerDown", evs, patience)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("b reported d down %v after d closed", time.Since(closed).Round(time.Millisecond))
}
