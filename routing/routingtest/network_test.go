package routingtest

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

func line(t *testing.T, names ...string) *Network {
	t.Helper()
	n := New(1)
	for _, s := range names {
		if err := n.AddNode(routing.Config{Self: s, UpdateInterval: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < len(names); i++ {
		if err := n.Link(names[i-1], names[i], 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := n.RunUntilQuiet(100); !ok {
		t.Fatal("not quiet")
	}
	return n
}

// TestIsolateLetsRoutesExpire: an isolated node's links still look up, so
// only route expiry removes what was learned through it.
func TestIsolateLetsRoutesExpire(t *testing.T) {
	n := line(t, "a", "x", "b")
	if _, ok := n.Engine("a").Lookup("b"); !ok {
		t.Fatal("a cannot reach b before isolation")
	}
	n.Isolate("x", true)
	n.RunFor(3 * time.Second)
	if _, ok := n.Engine("a").Lookup("b"); !ok {
		t.Fatal("route through x gone before its expiry (3.5 s)")
	}
	n.RunFor(time.Second)
	if _, ok := n.Engine("a").Lookup("b"); ok {
		t.Fatal("route through isolated x outlived its expiry")
	}
	if n.Counters.Dropped == 0 {
		t.Fatal("isolation dropped no message")
	}
	n.Isolate("x", false)
	n.RunFor(2 * time.Second)
	if _, ok := n.Engine("a").Lookup("b"); !ok {
		t.Fatal("a did not relearn b after the isolation ended")
	}
}

func TestCutAndKill(t *testing.T) {
	n := line(t, "a", "b", "c")
	n.Cut("a", "b", true)
	before := n.Counters.Dropped
	n.RunFor(2 * time.Second)
	if n.Counters.Dropped == before {
		t.Fatal("cut link delivered every message")
	}
	n.Kill("c")
	if _, ok := n.RunUntilQuiet(100); !ok {
		t.Fatal("not quiet")
	}
	if _, ok := n.Engine("b").Lookup("c"); ok {
		t.Fatal("b reaches killed c")
	}
	if len(n.Names()) != 2 || n.Engine("c") != nil {
		t.Fatalf("names after kill: %v", n.Names())
	}
}

func TestShortestPathsAvoidLeaves(t *testing.T) {
	g := map[string]map[string]routing.Metric{
		"a": {"l": 1, "x": 5}, "l": {"a": 1, "b": 1}, "x": {"a": 5, "b": 5}, "b": {"l": 1, "x": 5},
	}
	p := ShortestPaths(g, func(s string) bool { return s == "l" }, "a")
	if p["b"] != (Path{Cost: 10, Hops: 2}) || p["l"] != (Path{Cost: 1, Hops: 1}) {
		t.Fatalf("paths = %+v", p)
	}
}

// TestQuietWaitsForHeldUpdates: with a triggered-update interval of
// several rounds, a change held back by the rate limit keeps the network
// from counting as quiet even when no message is in flight.
func TestQuietWaitsForHeldUpdates(t *testing.T) {
	n := New(1)
	for _, s := range []string{"a", "b", "c"} {
		cfg := routing.Config{Self: s, UpdateInterval: time.Hour, MinTriggeredInterval: 500 * time.Millisecond, Hysteresis: routing.NoHysteresis}
		if err := n.AddNode(cfg); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][2]string{{"a", "b"}, {"b", "c"}} {
		if err := n.Link(p[0], p[1], 10); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := n.RunUntilQuiet(200); !ok {
		t.Fatal("not quiet")
	}
	// b's new cost to c reaches a only after b's rate limit.
	if err := n.SetCost("b", "c", 50); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.RunUntilQuiet(200); !ok {
		t.Fatal("not quiet")
	}
	if r, _ := n.Engine("a").Lookup("c"); r.Metric != 60 {
		t.Fatalf("a's metric to c = %d when quiet, want 60", r.Metric)
	}
	if !n.Quiet() || n.Engine("b").Pending() {
		t.Fatal("quiet network reports held updates")
	}
}

// TestInOrderKeepsEachLinkOrder: with MaxDelay, messages on one direction
// of a link arrive out of send order unless InOrder is set, which
// delivers them in send order while their delays still vary.
func TestInOrderKeepsEachLinkOrder(t *testing.T) {
	for _, inOrder := range []bool{false, true} {
		n := line(t, "a", "b", "c")
		n.MaxDelay, n.InOrder = 3, inOrder
		sent := map[*byte]int{}     // first payload byte -> send index on its direction
		next := map[[2]string]int{} // direction -> next send index
		last := map[[2]string]int{} // direction -> send index of the last delivered
		reordered, delivered := 0, 0
		n.OnSend = func(from, to string, payload []byte) {
			k := [2]string{from, to}
			sent[&payload[0]] = next[k]
			next[k]++
		}
		n.Accept = func(from, to string, payload []byte) bool {
			k := [2]string{from, to}
			i, ok := sent[&payload[0]]
			if !ok {
				t.Fatalf("%s->%s delivered a message it did not send", from, to)
			}
			if j, ok := last[k]; ok && i < j {
				reordered++
			}
			last[k] = max(last[k], i)
			delivered++
			return true
		}
		for i := range 60 {
			// b's metric to c moves every round: b sends a a triggered
			// update whenever its rate limit allows.
			if err := n.SetCost("b", "c", routing.Metric(10+i%2*40)); err != nil {
				t.Fatal(err)
			}
			n.StepRound()
		}
		n.RunUntilQuiet(100)
		switch {
		case delivered < 40:
			t.Fatalf("InOrder=%v: only %d messages delivered", inOrder, delivered)
		case inOrder && reordered > 0:
			t.Fatalf("InOrder: %d of %d messages delivered before one sent earlier on their direction", reordered, delivered)
		case !inOrder && reordered == 0:
			t.Fatalf("MaxDelay 3 reordered none of %d messages", delivered)
		}
	}
}

// TestMinDelayDelaysEveryMessage: with MinDelay, a message sent in one
// round is delivered MinDelay+1 rounds later, not before.
func TestMinDelayDelaysEveryMessage(t *testing.T) {
	n := New(1)
	for _, s := range []string{"a", "b"} {
		if err := n.AddNode(routing.Config{Self: s}); err != nil {
			t.Fatal(err)
		}
	}
	n.MinDelay = 20
	if err := n.Link("a", "b", 10); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if got := n.StepRound(); got != 0 {
			t.Fatalf("round %d delivered %d messages before the 21st", n.Round, got)
		}
	}
	if got := n.StepRound(); got == 0 {
		t.Fatal("nothing delivered in round 21")
	}
}
