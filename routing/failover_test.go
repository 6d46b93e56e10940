package routing_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// untilAll steps n (Step-long rounds) until cond holds, failing after
// limit of virtual time; it returns the virtual time taken.
func untilAll(t *testing.T, n *routingtest.Network, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := n.Now
	for !cond() {
		if n.Now.Sub(start) > limit {
			t.Fatalf("condition not met within %v", limit)
		}
		stepChecked(t, n, 1)
	}
	return n.Now.Sub(start)
}

func chain(t *testing.T, nodes int, ring bool) *routingtest.Network {
	t.Helper()
	var names []string
	for i := range nodes {
		names = append(names, nodeName(i))
	}
	n := newNet(t, 9, routing.Config{}, names...)
	n.Step = 10 * time.Millisecond // one-way delivery latency
	for i := 1; i < nodes; i++ {
		mustLink(t, n, names[i-1], names[i], 100)
	}
	if ring {
		mustLink(t, n, names[nodes-1], names[0], 100)
	}
	quiet(t, n)
	n.RunFor(time.Second)
	return n
}

// TestWithdrawalWithinOneSecond: on a 20-hop line with 10 ms links, a link
// failure at one end makes the cut-off node unreachable everywhere well
// within a second (peer-down events for the user).
func TestWithdrawalWithinOneSecond(t *testing.T) {
	n := chain(t, 21, false)
	down := map[string]bool{}
	n.OnEvent = func(node string, ev routing.Event) {
		if ev.Dest == "n0000" && ev.Kind == routing.PeerDown {
			down[node] = true
		}
	}
	if err := n.Unlink("n0000", "n0001"); err != nil {
		t.Fatal(err)
	}
	took := untilAll(t, n, time.Second, func() bool { return len(down) == 20 })
	t.Logf("20 nodes saw n0000 go down within %v", took)
}

// TestRerouteWithinOneSecond: on a ring of 24 with 10 ms links, after a
// link fails every node again reaches every other node by the shortest
// remaining path within a second, even where no feasible alternate existed
// (seqno requests, not periodic refreshes, restore the routes).
func TestRerouteWithinOneSecond(t *testing.T) {
	n := chain(t, 24, true)
	if err := n.Unlink("n0000", "n0001"); err != nil {
		t.Fatal(err)
	}
	took := untilAll(t, n, time.Second, func() bool {
		for _, s := range n.Names() {
			ref := routingtest.ShortestPaths(n.Graph(), n.IsLeaf, s)
			for d, p := range ref {
				if r, ok := n.Engine(s).Lookup(d); !ok || uint64(r.Metric) != p.Cost {
					return false
				}
			}
		}
		return true
	})
	t.Logf("ring rerouted in %v", took)
}

// TestHysteresisStopsFlapping: two near-equal paths whose link costs jitter
// by up to ±4 every round (so the paths differ by at most 18). With the
// default margin of 20 the selected next hop never changes; without a
// margin it flaps.
func TestHysteresisStopsFlapping(t *testing.T) {
	flaps := func(h routing.Metric) int {
		n := newNet(t, 3, routing.Config{Hysteresis: h}, "a", "b", "c", "d")
		type link struct {
			a, b string
			cost routing.Metric
		}
		base := []link{{"a", "b", 100}, {"b", "d", 100}, {"a", "c", 100}, {"c", "d", 102}}
		for _, l := range base {
			mustLink(t, n, l.a, l.b, l.cost)
		}
		quiet(t, n)
		count := 0
		n.OnEvent = func(node string, ev routing.Event) {
			if node == "a" && ev.Dest == "d" {
				count++
			}
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 300 {
			for _, l := range base {
				if err := n.SetCost(l.a, l.b, l.cost+routing.Metric(r.IntN(9))-4); err != nil {
					t.Fatal(err)
				}
			}
			n.StepRound()
		}
		return count
	}
	if got := flaps(0); got != 0 {
		t.Errorf("default hysteresis: a's route to d changed %d times", got)
	}
	if got := flaps(routing.NoHysteresis); got == 0 {
		t.Error("without hysteresis the jittering costs never moved the route; the test proves nothing")
	} else {
		t.Logf("without hysteresis: %d route changes in 300 rounds", got)
	}
}

func ExampleEngine() {
	now := time.Unix(0, 0)
	a, _ := routing.New(routing.Config{Self: "a"})
	b, _ := routing.New(routing.Config{Self: "b"})
	a.LinkUp(now, "b", 10, false)
	b.LinkUp(now, "a", 10, false)
	// Deliver every message: each engine's output is the other's input.
	// What Receive causes goes out at the next Tick (NextTick is then
	// due at once).
	for a.HasReady() || b.HasReady() {
		for _, m := range a.Ready().Messages {
			_ = b.Receive(now, "a", m.Payload)
		}
		for _, m := range b.Ready().Messages {
			_ = a.Receive(now, "b", m.Payload)
		}
		a.Tick(now)
		b.Tick(now)
	}
	r, ok := a.Lookup("b")
	fmt.Println(r.NextHop, r.Metric, ok)
	// Output: b 10 true
}
