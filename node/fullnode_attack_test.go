package node

import (
	"testing"
	"time"
)

// TestAttackFiveLinksSpendNodeFullHandshakes: five neighbours of d with
// valid certificates (m1 to m5) each replay a full (XX) first message to
// d as fast as d answers, each held to its link's budget of full
// handshakes (Limits.FullHandshakesPerLink, a quarter of the node's).
// Four such budgets are the node's whole budget (Limits.FullHandshakes),
// five more than it: before, h, an honest neighbour, had its first
// circuit to d (which needs the full handshake) refused overloaded while
// the five flooded. Now the
// last quarter of the node's budget goes only to links drawing at most a
// sixteenth of their own rate from it, and h's first circuit is answered.
func TestAttackFiveLinksSpendNodeFullHandshakes(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.FullHandshakes = 32
		cfg.Limits.FullHandshakesPerLink = 8
	}
	attackers := []string{"m1", "m2", "m3", "m4", "m5"}
	c.build("h-d", "m1-d", "m2-d", "m3-d", "m4-d", "m5-d")
	c.waitRoute("h", "d", 1)
	var stops []func()
	var sent, overloaded int64
	for _, name := range attackers {
		m := c.nodes[name]
		s, o, stop := floodCostlyFirst(t, m, "d", nil, firstFull, m.link("d"))
		stops = append(stops, func() { stop(); sent += s.Load(); overloaded += o.Load() })
	}
	time.Sleep(time.Second) // the flood spends what it can
	if _, ok := c.nodes["h"].keyBook.LookupKey("d"); ok {
		t.Fatal("h knows d's key: its first circuit would not take the full handshake")
	}
	refused, tries, ok := dialUntilAccepted(t, c.nodes["h"], "d")
	for _, stop := range stops {
		stop()
	}
	t.Logf("m1 to m5 sent %d replayed full first messages (%d refused overloaded); h's first dial to d was refused overloaded %d times in %d tries (succeeded: %v)",
		sent, overloaded, refused, tries, ok)
	if refused > 0 {
		t.Errorf("five neighbours spent d's budget of full handshakes: h's first circuit to d was refused overloaded %d times of %d", refused, tries)
	}
	if overloaded == 0 {
		t.Errorf("none of the %d replayed first messages was refused overloaded", sent)
	}
}
