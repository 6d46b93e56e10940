package simulate

import "testing"

// TestDiscoverSpreadsCoordinates: 30 nodes in three regions join by
// gossip in random order; 20 s after every pair is reachable each node
// knows the network coordinate of at least 90 % of the members, though
// its own probes (one member a second) measured only some of them: the
// members publish their coordinates in their gossip metadata.
func TestDiscoverSpreadsCoordinates(t *testing.T) {
	ms := lastMesh(t, "coords.sim", `regions eu:n1..n10 us:n11..n20 ap:n21..n30 inside=0.5ms between=30ms..80ms spread=10ms
discover seed=n1 nodes=n2..n30 order=random
wait reachable timeout=3m
wait 20s
measure
`)
	if ms == nil {
		return
	}
	t.Logf("coordinates known %.1f %% (lowest node %.1f %%), round trips probed %.1f %%", 100*ms.Coords, 100*ms.CoordsMin, 100*ms.Probed)
	if ms.CoordsMin < 0.9 {
		t.Errorf("a node knows the coordinates of %.1f %% of the members, want at least 90 %% (mean %.1f %%, probed %.1f %%)",
			100*ms.CoordsMin, 100*ms.Coords, 100*ms.Probed)
	}
	// The probes alone would not have told them: gossip did.
	if ms.Coords-ms.Probed < 0.15 {
		t.Errorf("coordinates known %.1f %%, round trips probed %.1f %%: want gossip to add at least 15 points to what probes measured",
			100*ms.Coords, 100*ms.Probed)
	}
}

// lastMesh runs script on mem and returns what its last measure step
// measured; nil when the run failed (Test logged the report).
func lastMesh(t *testing.T, name, script string) *MeshStats {
	t.Helper()
	s, err := Parse(name, script)
	if err != nil {
		t.Fatal(err)
	}
	rep := Test(t, s, Config{Backend: BackendMem})
	if !rep.OK() {
		return nil
	}
	var ms *MeshStats
	for _, st := range rep.Steps {
		if st.Mesh != nil {
			ms = st.Mesh
		}
	}
	if ms == nil {
		t.Fatal("no measurement")
	}
	return ms
}

// TestDiscoverCoordinatesEarly: 30 nodes in three regions join by
// gossip in random order; 6 s after every pair is reachable most
// members' coordinates are known: a node publishes its coordinate after
// coordMinSamples probes (4, a probe a second), checked every second.
// After 8 probes, checked every 5 s, the first publications came about
// 8–13 s after a join.
func TestDiscoverCoordinatesEarly(t *testing.T) {
	ms := lastMesh(t, "coords-early.sim", `regions eu:n1..n10 us:n11..n20 ap:n21..n30 inside=0.5ms between=30ms..80ms spread=10ms
discover seed=n1 nodes=n2..n30 order=random
wait reachable timeout=3m
wait 6s
measure
`)
	if ms == nil {
		return
	}
	t.Logf("coordinates known %.1f %% (lowest node %.1f %%), round trips probed %.1f %%", 100*ms.Coords, 100*ms.CoordsMin, 100*ms.Probed)
	if ms.Coords < 0.5 {
		t.Errorf("coordinates known for %.1f %% of the (node, member) pairs (lowest node %.1f %%, probed %.1f %%), want at least 50 %%",
			100*ms.Coords, 100*ms.CoordsMin, 100*ms.Probed)
	}
}
