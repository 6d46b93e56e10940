package node

import "testing"

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
	startSink(t, c.nodes["x"])
	handOpens(t, c.nodes["m"].link("p"), "loop", []handOpen{
		{"back to a relay it crossed", 2, "h", []string{"p", "m"}, false},
		{"a second lap", 3, "h", []string{"r", "p", "m"}, false},
		{"back to its source", 2, "p", []string{"q", "m"}, false},
		{"a path that does not name p", 2, "h", []string{"q", "m"}, true},
	})
}
