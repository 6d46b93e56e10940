package node

import (
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackLoopedCircuitRefused: m, a router beside p and r, sends a
// circuit back into the mesh after it crossed p and r, so that the same
// bytes cross them again on every lap, up to the hop limit: m's open to
// x at hop 2 with the path p, m (as m would forward the circuit p sent
// it) and at hop 3 with r, p, m. Honest routing is loop-free (routes
// are feasible), so a relay that already appears on a circuit's path,
// or is its source, is being made to carry it twice: it refuses with
// code Policy, naming the loop. The same open with a path that does not
// name p is relayed.
func TestAttackLoopedCircuitRefused(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	c.build("m-p", "p-r", "r-x", "m-r")
	c.waitRoute("m", "x", 2)
	c.waitRoute("p", "x", 2)
	m, x := c.nodes["m"], c.nodes["x"]
	startSink(t, x)
	l := m.link("p")
	for _, tc := range []struct {
		name   string
		hop    uint8
		source string
		path   []string
		ok     bool
	}{
		{"back to a relay it crossed", 2, "h", []string{"p", "m"}, false},
		{"a second lap", 3, "h", []string{"r", "p", "m"}, false},
		{"back to its source", 2, "p", []string{"q", "m"}, false},
		{"a path that does not name p", 2, "h", []string{"q", "m"}, true},
	} {
		o := &circuit.Open{Dest: "x", Source: tc.source, Service: "sink", Hop: tc.hop, HopLimit: 15, Path: tc.path}
		s, err := openClearByHand(ctxT(t, 10*time.Second), l, o)
		if s != nil {
			s.Reset(circuit.CloseCancelled)
		}
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && err == nil:
			t.Errorf("%s (hop %d, source %s, path %q): relayed", tc.name, tc.hop, tc.source, tc.path)
		case !tc.ok && !(strings.Contains(err.Error(), circuit.Policy.String()) && strings.Contains(err.Error(), "loop")):
			t.Errorf("%s: %v, want a policy refusal naming the loop", tc.name, err)
		}
	}
}
