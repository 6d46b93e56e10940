package node

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestRelayPassesOverNextHopsTheCircuitCrossed: routes are loop-free at
// every instant, but a circuit crosses them at different instants, so
// while they change (a starved neighbour's link costs swinging) a relay
// can get a circuit whose source, or a relay it crossed, is the relay's
// next hop by then. b's route to x goes through a, with c as a feasible
// alternate; e's only route goes through a. d hands b and e opens that
// crossed a: as a's own circuit (source a) and as one a relayed (path a,
// d). b sends both on through c, where they are accepted, and e, with no
// other next hop, refuses them no route (which a source's Dial retries on
// another next hop). Before, both relays sent them back to a, which
// refused them as looping (code Policy), and a Dial got that refusal as
// its answer: 1 of about 9,000 pings in a mesh of five nodes whose link
// costs changed every 5 to 45 ms, and a failed ping among a minute of
// them through a starved daemon (TestE2EStarvedMemberOfGossipMesh).
func TestRelayPassesOverNextHopsTheCircuitCrossed(t *testing.T) {
	costs := map[string]map[string]links.Cost{
		"a": {"x": 100, "b": 100, "e": 100},
		"b": {"a": 100, "c": 300, "d": 100},
		"c": {"x": 150, "b": 300},
		"x": {"a": 100, "c": 150},
		"d": {"b": 100, "e": 100},
		"e": {"a": 100, "d": 1000},
	}
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.LinkCosts = costs[cfg.Name]
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	c.build("a-x", "a-b", "b-c", "c-x", "b-d", "a-e", "d-e")
	deadline := time.Now().Add(patience)
	for {
		pb, _ := c.nodes["b"].Peer("x")
		pe, _ := c.nodes["e"].Peer("x")
		if pb.NextHop == "a" && slices.Contains(pb.Alternates, "c") && pe.NextHop == "a" && len(pe.Alternates) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes to x never settled: b %+v, e %+v", pb, pe)
		}
		time.Sleep(10 * time.Millisecond)
	}
	startSink(t, c.nodes["x"])
	d := c.nodes["d"]
	opens := []handOpen{
		{"a's own circuit", 1, "a", []string{"d"}, true},
		{"a circuit a relayed", 2, "h", []string{"a", "d"}, true},
	}
	handOpens(t, d.link("b"), "loop", opens)
	for _, tc := range opens {
		o := &circuit.Open{Dest: "x", Source: tc.source, Service: "sink", Hop: tc.hop, HopLimit: 15, Path: tc.path}
		s, err := openClearByHand(ctxT(t, 10*time.Second), d.link("e"), o)
		if s != nil {
			s.Reset(circuit.CloseCancelled)
		}
		if err == nil || !strings.Contains(err.Error(), circuit.NoRoute.String()) {
			t.Errorf("%s through e, whose only next hop is a: %v, want refused no route", tc.name, err)
		}
	}
}
