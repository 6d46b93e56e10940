package routing_test

import (
	"testing"

	"github.com/circuitmesh/circuitmesh/routing"
)

// TestMixedReleasesConverge: in a mesh where a third of the nodes are of
// the release before attested updates (they read routing messages of
// version 3 only, refuse the others as malformed, and send none), every
// node still ends on the shortest paths without a loop at any round: a
// node sends such a node nothing of version 4 but its hello, which it
// refuses, while the other nodes exchange attested updates.
func TestMixedReleasesConverge(t *testing.T) {
	const base = 3 // the version the release before reads
	spec := graphSpec{nodes: 150, avgDegree: 3, leafFrac: 0.2, seed: 21}
	n := buildRandom(t, spec, propCfg())
	old := map[string]bool{}
	for i, name := range n.Names() {
		if i%3 == 1 {
			old[name] = true
		}
	}
	// Messages leave the engines from the links' set-up on (the hellos
	// went then): what they send is checked as it is delivered.
	newer, refused := 0, 0
	n.Accept = func(from, to string, p []byte) bool {
		switch {
		case p[0] == base:
			return true
		case routing.IsHello(p) && (old[from] || old[to]):
			// The older release sends no hello, and refuses one.
			refused++
			return false
		case old[from] || old[to]:
			t.Errorf("%s sent %s a message of version %d with entries (old: %v, %v)", from, to, p[0], old[from], old[to])
			return false
		}
		if !routing.IsHello(p) {
			newer++
		}
		return true
	}
	rounds := runChecked(t, n, 2000)
	checkShortest(t, n, 0)
	for _, name := range n.Names() {
		if m := n.Engine(name).Stats().Malformed; m > 0 {
			t.Errorf("%s refused %d messages", name, m)
		}
	}
	t.Logf("%d nodes, %d of the older release: %d rounds, %d messages (%d of version 4 with entries, %d hellos refused)",
		spec.nodes, len(old), rounds, n.Counters.Sent, newer, refused)
	if newer == 0 || refused == 0 {
		t.Fatal("the newer nodes sent nothing of version 4")
	}
}
