package simulate

import "testing"

// TestDiscoverProbesNearestMembers: 60 nodes in one region 20 ms across
// join by gossip; 40 s after every pair is reachable the nodes have
// measured the round trip to more of the members than gossip's own
// probes (one member a second, at random) would have: the link policy
// has the nearest members by coordinate probed, whose round trips decide
// its shortcuts (81 % of the (node, member) pairs; 68 % without them).
func TestDiscoverProbesNearestMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("60 nodes for 40 s of virtual time: not in -short")
	}
	ms := lastMesh(t, "probe.sim", `regions eu:n1..n60 inside=0.5ms spread=20ms
discover seed=n1 nodes=n2..n60 order=random
wait reachable timeout=3m
wait 40s
measure
`)
	if ms == nil {
		return
	}
	t.Logf("round trips probed %.1f %%, coordinates known %.1f %%, stretch %.3f", 100*ms.Probed, 100*ms.Coords, ms.Stretch)
	if ms.Probed < 0.75 {
		t.Errorf("round trips probed for %.1f %% of the (node, member) pairs, want at least 75 %%", 100*ms.Probed)
	}
}
