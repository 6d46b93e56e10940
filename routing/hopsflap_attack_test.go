package routing

import (
	"testing"
	"time"
)

// hopsLies returns m's attack of telling its neighbours, for every
// origin, a route at metric 2 at the seqno they hold (better than any
// they have, and feasible: m is selected, as a neighbour may claim any
// distance at a seqno the origin signed), with hops 1, or with flip
// alternately 1 and 2 from one call to the next.
func (s *redMesh) hopsLies(flip bool) func() (int, int) {
	calls := 0
	return func() (int, int) {
		calls++
		hops := uint16(1)
		if flip && calls%2 == 0 {
			hops = 2
		}
		return s.sendPerOrigin(func(o string, r Route) entry {
			return entry{kind: kindUpdate, origin: o, seqno: r.Seqno, metric: 2, hops: hops}
		}, nil)
	}
}

func (s *redMesh) updatesOut() (n int) {
	for _, name := range s.order {
		n += int(s.engines[name].Stats().UpdatesOut)
	}
	return n
}

// TestAttackHopsFlapFloodsTheMesh: m, linked to three nodes of the
// 120-node mesh, tells them every 50 ms a route to every origin at metric
// 2 at the seqno they hold, its hops alternately 1 and 2. The metric
// never moves, so nothing is unfeasible, no seqno is asked for and no
// origin raises. A change of hops alone was a triggered update (apply),
// so each of m's entries made its neighbour send the route to all of its
// neighbours, and every node behind it do the same, 20 times a second:
// 39,473-39,876 messages, 22.6-22.8 MB and 1.60-1.62 million updates in
// 5 s for m's 35,700 entries (501,600 bytes), 5.4 times the bytes of m
// flapping the metric itself at the same rate. Now a node sends a change
// of hops alone at once at most once a second per route, holding the
// rest until then: 2,669 messages, 1.02 MB, 69,871 updates, against
// 134,521 updates (3.9-4.2 MB) for the metric flap.
func TestAttackHopsFlapFloodsTheMesh(t *testing.T) {
	const secs = 5
	run := func(flip, metricFlap bool) (redTally, int) {
		s := newRedMesh(t, 120, []string{"n000", "n040", "n080"})
		for i := 0; i < 15*200; i++ {
			s.step()
		}
		lie := s.hopsLies(false)
		lie() // m selected everywhere it can be, before measuring
		for i := 0; i < 10*200; i++ {
			s.step()
		}
		u0 := s.updatesOut()
		attack := s.hopsLies(flip)
		if metricFlap {
			attack = s.flapLies() // TestAttackFlappingDistanceLie's lies, every 50 ms
		}
		c := s.phaseEvery(secs*time.Second, 10, attack)
		return c, s.updatesOut() - u0
	}
	still, su := run(false, false)
	flap, fu := run(true, false)
	mflap, mu := run(false, true)
	t.Logf("%ds, m's metric 1/5000 flapping every 50 ms: %v, %d updates", secs, mflap, mu)
	t.Logf("%ds, m's constant lies every 50 ms: %v, %d updates", secs, still, su)
	t.Logf("%ds, m's hops flapping every 50 ms: %v, %d updates", secs, flap, fu)
	t.Logf("per entry of m's: %.1f updates and %.1f messages in the mesh (constant: %.2f, %.2f); %.1f bytes per byte of m's",
		float64(fu)/float64(flap.mEntries), float64(flap.msgs)/float64(flap.mEntries),
		float64(su)/float64(still.mEntries), float64(still.msgs)/float64(still.mEntries),
		float64(flap.bytes)/float64(flap.mBytes))
	// Each node sends a change of a route's hops alone at most once a
	// second (hopsGap): m flipping every 50 ms, that is at most about 2
	// updates in the mesh for each of m's entries, and less than m's
	// documented worst, flapping the metric itself (mu).
	if fu > 4*flap.mEntries || fu > mu {
		t.Errorf("m's %d entries flapping hops made the mesh send %d updates (%d with constant hops, %d flapping the metric)", flap.mEntries, fu, su, mu)
	}
}
