package routing_test

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// horizonCheck follows every update a network sends and checks the rule
// of poison reverse as split horizon on point-to-point links (RFC 8966
// §3.7.4): a node never tells a neighbour a finite route for an origin it
// routes through that neighbour (the neighbour could only loop through
// it), and it retracts a route only to a neighbour whose last word from
// it about that origin was finite, so that a switch of next hop to a
// neighbour costs that neighbour one retraction at most.
type horizonCheck struct {
	t   testing.TB
	n   *routingtest.Network
	inf routing.Metric
	// told[from, to, origin]: the last update from told to was finite.
	told map[[3]string]bool
	// finite updates sent, retractions to the sender's next hop, other
	// retractions (routes lost)
	finite, poison, lost int
	bad                  int
}

func watchHorizon(t testing.TB, n *routingtest.Network, inf routing.Metric) *horizonCheck {
	h := &horizonCheck{t: t, n: n, inf: inf, told: map[[3]string]bool{}}
	n.OnSend = h.sent
	return h
}

func (h *horizonCheck) sent(from, to string, payload []byte) {
	ups, err := routing.DecodeUpdates(payload)
	if err != nil {
		h.t.Fatalf("%s -> %s: %v", from, to, err)
	}
	for _, u := range ups {
		if u.Origin == from {
			continue // the sender's own route
		}
		k := [3]string{from, to, u.Origin}
		nh, reach := h.n.Engine(from).NextHop(u.Origin)
		via := reach && nh == to
		switch {
		case u.Metric < h.inf:
			h.finite++
			if via {
				h.fail("%s told %s a finite route (metric %d) for %s, which it routes through %s", from, to, u.Metric, u.Origin, to)
			}
			h.told[k] = true
		default:
			if via {
				h.poison++
			} else {
				h.lost++
			}
			if !h.told[k] {
				h.fail("%s retracted %s to %s, whose last update from it about %s was no finite route", from, u.Origin, to, u.Origin)
			}
			h.told[k] = false
		}
	}
}

func (h *horizonCheck) fail(format string, args ...any) {
	h.t.Helper()
	if h.bad++; h.bad <= 10 {
		h.t.Errorf(format, args...)
	}
}

// TestSplitHorizon: on a random mesh of 200 nodes, through a cold start,
// link costs changing (next hops move back and forth) and the death of
// the busiest node, no node sends a neighbour a finite update for an
// origin it routes through that neighbour, and a node sends a neighbour
// a retraction for an origin only after a finite update of it (one
// retraction per switch of next hop to that neighbour, none to a
// neighbour that was never told the route).
func TestSplitHorizon(t *testing.T) {
	for _, tc := range []struct {
		name string
		hyst routing.Metric
	}{{"no-hysteresis", routing.NoHysteresis}, {"default-hysteresis", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := propCfg()
			cfg.Hysteresis = tc.hyst
			n := buildRandom(t, graphSpec{nodes: 200, avgDegree: 3, seed: 77}, cfg)
			h := watchHorizon(t, n, routing.DefaultInfinity)
			quiet(t, n)
			cold := *h
			// Costs move on a tenth of the links, then go back: next hops
			// go and come back.
			r := rand.New(rand.NewPCG(5, 6))
			g := n.Graph()
			var moved []routingtest.Edge
			for _, a := range n.Names() {
				for _, b := range slices.Sorted(maps.Keys(g[a])) {
					if a < b && r.IntN(10) == 0 {
						moved = append(moved, routingtest.MakeEdge(a, b))
					}
				}
			}
			for _, restore := range []bool{false, true} {
				for _, ed := range moved {
					cost := randomCost(r)
					if restore {
						cost = g[ed.A][ed.B]
					}
					if err := n.SetCost(ed.A, ed.B, cost); err != nil {
						t.Fatal(err)
					}
				}
				quiet(t, n)
			}
			n.Kill(busiest(n))
			quiet(t, n)
			t.Logf("cold start: %d finite updates, %d retractions to the sender's next hop, %d of lost routes",
				cold.finite, cold.poison, cold.lost)
			t.Logf("in all: %d finite updates, %d retractions to the sender's next hop, %d of lost routes",
				h.finite, h.poison, h.lost)
			if h.finite == 0 || h.poison == 0 || h.lost == 0 {
				t.Fatalf("the scenario did not exercise the rule: %d finite, %d poison, %d lost", h.finite, h.poison, h.lost)
			}
		})
	}
}
