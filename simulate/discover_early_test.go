package simulate

import "testing"

// TestDiscoverNearLinksEarly: 100 nodes in three regions, each a disc
// 20 ms across, join by gossip in random order. Ten seconds after every
// pair is reachable, before most coordinates are known, the links inside
// a region already go to near members: a node that has just joined
// measures round trips before it links beyond its first link, and a
// measured round trip replaces a link before MinAge. Links drawn at
// random while joining (two of three to another region) gave a stretch
// of 3.2 inside a region at that moment.
func TestDiscoverNearLinksEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("100 gossip nodes: not in -short")
	}
	ms := lastMesh(t, "early.sim", `regions eu:n1..n33 us:n34..n66 ap:n67..n100 inside=0.5ms between=30ms..80ms spread=20ms
discover seed=n1 nodes=n2..n100 order=random
wait reachable timeout=3m
wait 10s
measure
`)
	if ms == nil {
		return
	}
	t.Logf("10 s after every pair is reachable:\n%v", ms)
	// Links are still being replaced (make before break): a route may
	// be on its way for a moment.
	if ms.Reachable < 0.99 {
		t.Errorf("%d of %d pairs reachable, want at least 99 %%", ms.ReachablePairs, ms.Pairs)
	}
	if ms.MaxDegree > 10 {
		t.Errorf("max degree %d above the default hard maximum 10", ms.MaxDegree)
	}
	if ms.StretchInside > 2.5 || ms.Stretch > 1.6 {
		t.Errorf("path stretch %.3f, inside a region %.3f (%d of %d links inside a region): want at most 1.6 and 2.5",
			ms.Stretch, ms.StretchInside, ms.LinksInside, ms.Links)
	}
}
