package node

import (
	"testing"
	"time"
)

// The lost grace follows how long routing takes here to reach members
// again on its own: hub, at its maximum, saw routing bring a member back
// 12 s after it lost it, without hub dialling it (on a node starved of
// CPU, routing takes that long to bring routes around a changed link), so
// it gives up no link for x, a member routing has not reached for 5 s,
// and one once x is 20 s lost. Before, the grace stayed 3 s on links of
// loopback RTT and a policy that fires on time: in a starved 30-node mesh
// 87 % of repair dials went to members that routing reached again
// through other nodes, each giving up a link at the maximum, whose routes
// made more members look lost in turn.
func TestLostGraceFollowsHowLongRoutingTakesToHeal(t *testing.T) {
	_, hub := fullTriangle(t)
	// A member of the triangle routing reached again 12 s after losing
	// it, over a link hub did not dial (the test forgets hub's dial).
	hub.disco.mu.Lock()
	delete(hub.disco.owned, "a")
	hub.disco.mu.Unlock()
	setLost(hub, "a", time.Now().Add(-12*time.Second))
	hub.disco.step(time.Now())
	roomOnlyAfter(t, hub, 5*time.Second, 20*time.Second, "whose routing took 12 s to reach a member again")

	// That return counts for a minute, less and less: a slow return seen
	// once does not put off the repair of a partition minutes later.
	hub.disco.mu.Lock()
	at, heal := hub.disco.healAt, hub.disco.heal
	half, gone := hub.disco.healLocked(at.Add(healMemory/2)), hub.disco.healLocked(at.Add(healMemory))
	hub.disco.mu.Unlock()
	if d := half - heal/2; heal < 12*time.Second || d < -time.Millisecond || d > time.Millisecond || gone != 0 {
		t.Fatalf("heal %v seen at %v: %v half a minute later and %v a minute later, want at least 12s, then half, then none",
			heal, at.Format(time.StampMilli), half, gone)
	}
}

// A member this node dialled itself does not count: its route may have
// come back over that dial's link, which says nothing of how long routing
// takes on its own. A member lost for a minute or more was partitioned
// off, not slow to route, and does not count either.
func TestLostGraceIgnoresOwnDialsAndPartitions(t *testing.T) {
	_, hub := fullTriangle(t)
	// What the triangle's forming left (returns of a fraction of a
	// second while links came up) may stand.
	hub.disco.mu.Lock()
	hub.disco.owned["a"] = true
	delete(hub.disco.owned, "b")
	before := hub.disco.healAt
	hub.disco.mu.Unlock()
	setLost(hub, "a", time.Now().Add(-12*time.Second))
	setLost(hub, "b", time.Now().Add(-2*time.Minute))
	hub.disco.step(time.Now())
	hub.disco.mu.Lock()
	heal, at := hub.disco.heal, hub.disco.healAt
	hub.disco.mu.Unlock()
	if at != before {
		t.Fatalf("heal time after routing reached again a member hub dialled (12 s) and one lost for 2 minutes: %v, want neither counted", heal)
	}
}
