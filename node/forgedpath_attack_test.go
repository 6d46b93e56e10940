package node

import (
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackForgedPathRefused: m, a router, opens clear circuits to x
// through p by hand with a forged path: one posing as another relay (the
// path ends with a name not m's), one whose path is shorter than its hop
// count says. p refuses both with code Policy, naming the path; the same
// open with the path m must give (ending with m, one name per hop) is
// accepted. Without the check, p would relay the claims, and a later
// relay would count them against a path m never took.
func TestAttackForgedPathRefused(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	c.build("m-p", "p-r", "r-x")
	c.waitRoute("m", "x", 3)
	m, x := c.nodes["m"], c.nodes["x"]
	startSink(t, x)
	l := m.link("p")
	for _, tc := range []struct {
		name string
		hop  uint8
		path []string
		ok   bool
	}{
		{"posing as another relay", 1, []string{"q"}, false},
		{"path shorter than its hops", 2, []string{"m"}, false},
		{"path longer than its hops", 1, []string{"q", "m"}, false},
		{"the path m must give", 2, []string{"q", "m"}, true},
	} {
		o := &circuit.Open{Dest: "x", Source: "h", Service: "sink", Hop: tc.hop, HopLimit: 15, Path: tc.path}
		s, err := openClearByHand(ctxT(t, 10*time.Second), l, o)
		if s != nil {
			s.Reset(circuit.CloseCancelled)
		}
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && err == nil:
			t.Errorf("%s (hop %d, path %q): accepted", tc.name, tc.hop, tc.path)
		case !tc.ok && !(strings.Contains(err.Error(), circuit.Policy.String()) && strings.Contains(err.Error(), "path")):
			t.Errorf("%s: %v, want a policy refusal naming the path", tc.name, err)
		}
	}
}
