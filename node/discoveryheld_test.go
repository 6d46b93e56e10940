package node

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// TestHeldLinkLetsOthersBeReplaced: the far link r9 is drained for a
// replacement, but a route depends on it alone at drainMax, so it is kept
// and held (drainHold); then the newer seqno comes and nothing depends on
// r9 alone any more. The next farthest link r8 is drained at the next
// step and closed once drained, while r9 waits out its hold. Before, the
// policy saw r9's stranded count only while it was above 0, so it dropped
// r9 at every step, the drain ignored that drop for the hold, and no other
// link of the node was replaced until the hold ran out, 30 s later.
func TestHeldLinkLetsOthersBeReplaced(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cfg := topology.Config{Target: 3, Max: 6, Long: -1}
	members := []topology.Member{{Name: "r0"}, {Name: "r1"}, {Name: "r2"}, {Name: "r8"}, {Name: "r9"}}
	rtt := map[string]time.Duration{"r0": ms(10), "r1": ms(20), "r2": ms(30), "r8": ms(90), "r9": ms(100)}
	t0 := time.Unix(1_700_000_000, 0)
	var d drains
	f := &fakeDrainRouter{left: map[string]int{"r8": 1, "r9": 2}, draining: map[string]bool{}}
	linked := map[string]bool{"r0": true, "r1": true, "r2": true, "r8": true, "r9": true}
	strand := map[string]int{"r9": 2} // a route depends on r9 alone
	closedAt := map[string]time.Duration{}
	var r8Drained time.Duration = -1
	step := func(at time.Duration) {
		now := t0.Add(at)
		policy := d.policyStranded(strand, now)
		var ls []topology.Link
		for _, peer := range []string{"r0", "r1", "r2", "r8", "r9"} {
			if linked[peer] {
				ls = append(ls, topology.Link{Peer: peer, Outbound: true, RTT: rtt[peer], Age: time.Hour, Alternates: 1,
					Stranded: policy[peer], Replacing: d.draining(peer)})
			}
		}
		plan := topology.Decide(topology.Input{Self: "me", Members: members, Links: ls, Config: cfg})
		d.drainDrops(f, now, plan.Drop, strand, func(p string) bool { return linked[p] }, func(dr topology.Drop) {
			closedAt[dr.Peer] = at
			linked[dr.Peer] = false
		})
		if r8Drained < 0 && f.draining["r8"] {
			r8Drained = at
		}
	}
	step(0)
	if !f.draining["r9"] {
		t.Fatalf("first step: draining %v, want r9", f.draining)
	}
	step(drainMax)
	if !linked["r9"] || f.draining["r9"] {
		t.Fatalf("at drainMax with a route on r9 alone: linked %v, draining %v: want r9 kept and its drain cancelled", linked, f.draining)
	}
	// The newer seqno came: nothing depends on r9 alone, routes still use it.
	strand["r9"] = 0
	f.left["r8"] = 0 // nothing routes through r8 once it is drained
	for at := drainMax + time.Second; at <= 2*time.Minute; at += time.Second {
		step(at)
	}
	held := drainMax + time.Second
	if r8Drained != held {
		t.Errorf("r8 first drained %v after the first drain, closed at %v (r9 closed at %v): want drained at %v, while r9 is held",
			r8Drained, closedAt["r8"], closedAt["r9"], held)
	}
	if at, ok := closedAt["r8"]; !ok || at > held+drainMin {
		t.Errorf("r8 closed at %v (closed: %v): want by %v", at, ok, held+drainMin)
	}
	// r9 is still dropped after its hold: replaced, not kept for good.
	if at, ok := closedAt["r9"]; !ok || at < drainMax+drainHold {
		t.Errorf("r9 closed at %v (closed: %v): want after its hold, from %v", at, ok, drainMax+drainHold)
	}
}
