package routing_test

import (
	"testing"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// deadEndNet: o-y 5, y-x 5, x-a 10, a-b 1, b-o 1, and m linked to x
// (m-x 10) or, with twoHops, to w (m-w 10, w-x 10). a reaches o via b.
// The a-b link goes down: a's route via x (20) is unfeasible against its
// feasibility distance (2), so a asks for a new seqno through x. If
// attack, m sends its neighbour, every round, a seqno request for o's
// seqno + 0x7fff with a hop count that makes it die at y. It returns
// the rounds (50 ms each) until a reaches o again, or -1 within
// maxRounds.
func deadEndNet(t *testing.T, attack, twoHops bool, maxRounds int) int {
	t.Helper()
	n := routingtest.New(1)
	links := []struct {
		a, b string
		c    routing.Metric
	}{{"o", "y", 5}, {"y", "x", 5}, {"x", "a", 10}, {"a", "b", 1}, {"b", "o", 1}, {"m", "x", 10}}
	entry, hops := "x", uint8(2)
	if twoHops {
		links[len(links)-1].b = "w"
		links = append(links, struct {
			a, b string
			c    routing.Metric
		}{"w", "x", 10})
		entry, hops = "w", 3
	}
	for _, l := range links {
		for _, name := range []string{l.a, l.b} {
			if n.Engine(name) == nil {
				if err := n.AddNode(routing.Config{Self: name, Seed: 1}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := n.Link(l.a, l.b, l.c); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := n.RunUntilQuiet(2000); !ok {
		t.Fatal("no convergence")
	}
	if r, ok := n.Engine("a").Lookup("o"); !ok || r.NextHop != "b" {
		t.Fatalf("a's route to o: %+v", r)
	}
	inject := func() {
		if !attack {
			return
		}
		r, _ := n.Engine(entry).Lookup("o")
		n.Do(entry, func(e *routing.Engine) { _ = e.Receive(n.Now, "m", routing.RequestMessage("o", r.Seqno+0x7fff, hops)) })
	}
	// m starts before the failure, as it would keep it up for good.
	for i := 0; i < 40; i++ {
		inject()
		n.StepRound()
	}
	if err := n.Unlink("a", "b"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= maxRounds; i++ {
		inject()
		n.StepRound()
		if _, ok := n.Engine("a").Lookup("o"); ok {
			return i
		}
	}
	return -1
}

// TestAttackDeadEndRequestsStarveSeqno: m keeps x's (or, two hops away,
// w's and x's) "already forwarded recently" window for o filled with
// requests that die before they reach o. After a's link to b fails, a
// needs o's next seqno through x. Before, a had no route to o within 300
// s (60 s with m two hops away); now it has one within a few rounds of
// the time it takes without m.
func TestAttackDeadEndRequestsStarveSeqno(t *testing.T) {
	for _, twoHops := range []bool{false, true} {
		quiet := deadEndNet(t, false, twoHops, 1200)
		loud := deadEndNet(t, true, twoHops, 6000)
		t.Logf("two hops %v: a reached o again after %d rounds without m, %d with m (-1: not within 300 s)", twoHops, quiet, loud)
		if quiet < 0 {
			t.Fatal("a never reached o even without m")
		}
		if loud < 0 || loud > 4*quiet+40 {
			t.Errorf("two hops %v: m's dead-end requests kept a from o: %d rounds (without m %d)", twoHops, loud, quiet)
		}
	}
}
