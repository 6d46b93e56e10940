package node

import (
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
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
	handOpens(t, m.link("p"), "path", []handOpen{
		{"posing as another relay", 1, "h", []string{"q"}, false},
		{"path shorter than its hops", 2, "h", []string{"m"}, false},
		{"path longer than its hops", 1, "h", []string{"q", "m"}, false},
		{"the path m must give", 2, "h", []string{"q", "m"}, true},
	})
}

// handOpen is a clear open to x's sink that a test sends by hand.
type handOpen struct {
	name   string
	hop    uint8
	source string
	path   []string
	ok     bool // relayed, or refused with code Policy naming what
}

// handOpens sends each open on l, and checks that those not ok are refused
// with code Policy and an error naming what, and the others accepted.
func handOpens(t *testing.T, l links.Link, what string, opens []handOpen) {
	t.Helper()
	for _, tc := range opens {
		o := &circuit.Open{Dest: "x", Source: tc.source, Service: "sink", Hop: tc.hop, HopLimit: 15, Path: tc.path}
		s, err := openClearByHand(ctxT(t, 10*time.Second), l, o)
		if s != nil {
			s.Reset(circuit.CloseCancelled)
		}
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && err == nil:
			t.Errorf("%s (hop %d, source %s, path %q): accepted", tc.name, tc.hop, tc.source, tc.path)
		case !tc.ok && !(strings.Contains(err.Error(), circuit.Policy.String()) && strings.Contains(err.Error(), what)):
			t.Errorf("%s: %v, want a policy refusal naming the %s", tc.name, err, what)
		}
	}
}
