package node

import (
	"maps"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// TestRouteLatency: the route the shortcut rule compares with a member's
// RTT leaves out what the first hop's cost adds to its RTT (a lossy link
// to a neighbour would otherwise make every member behind it look far and
// attract shortcuts to all of them).
func TestRouteLatency(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cost := func(d time.Duration) uint32 { return uint32(d / routeCostUnit) }
	current := []LinkInfo{
		{Peer: "clean", RTT: ms(2), Cost: cost(ms(2))},
		// 2 ms, but 10 % loss doubles its cost: 4 ms.
		{Peer: "lossy", RTT: ms(2), Cost: cost(ms(4))},
		// Pinned below its RTT: nothing to take away.
		{Peer: "pinned", RTT: ms(5), Cost: cost(ms(1))},
	}
	routes := map[string]routeHop{
		"a": {next: "clean", cost: cost(ms(6))},
		"b": {next: "lossy", cost: cost(ms(8))},
		"c": {next: "pinned", cost: cost(ms(3))},
		"d": {next: "gone", cost: cost(ms(3))}, // first hop not a link (any more)
		// Through a drained link: its cost is the drain's penalty, not
		// a length (10 s at the default Infinity).
		"e": {next: "clean", cost: uint32(routing.Config{}.DrainPenalty()) + cost(ms(6))},
		"f": {next: "clean", cost: uint32(routing.Config{}.DrainPenalty())},
	}
	want := map[string]time.Duration{"a": ms(6), "b": ms(6), "c": ms(3)}
	if got := routeLatency(map[string]time.Duration{}, map[string]time.Duration{}, routes, current, uint32(routing.Config{}.DrainPenalty())); !maps.Equal(got, want) {
		t.Errorf("route latencies %v, want %v", got, want)
	}
}

// Events without pause do not push the policy's step back: the first one
// brings it to policySettle after it, later ones leave it there. Before,
// each event restarted the settle period, so a node that heard of a
// change every few milliseconds (hundreds of members joining) did not run
// its policy at all until they stopped.
func TestPolicyStepNotPushedBackByEvents(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var s settleTimer
	s.schedule(start, 2*time.Second) // the periodic step
	if !s.event(start.Add(time.Millisecond)) {
		t.Fatal("an event did not bring the periodic step forward")
	}
	want := start.Add(time.Millisecond + policySettle)
	for i := 2; i < 100; i++ {
		if s.event(start.Add(time.Duration(i) * time.Millisecond)) {
			t.Fatalf("event %d ms after the first pushed the step back", i)
		}
	}
	if !s.due.Equal(want) {
		t.Fatalf("step due %v after the first event, want %v", s.due.Sub(start), want.Sub(start))
	}
}

// With a thousand members a step is dear and events come without pause
// during a mass join: an event brings the next step to stepGap after the
// previous one (0.5 s), not policySettle after the event; with a hundred
// members the settle period alone decides, and the gap never exceeds half
// the periodic interval.
func TestPolicyStepGapGrowsWithMembers(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const interval = 2 * time.Second
	for _, tc := range []struct {
		members int
		want    time.Duration // from the step to the next one after an event 1 ms after it
	}{
		{members: 1000, want: 500 * time.Millisecond},
		{members: 100, want: time.Millisecond + policySettle},
		{members: 100000, want: interval / 2},
	} {
		var s settleTimer
		s.schedule(start, interval)
		s.earliest = start.Add(stepGap(tc.members, interval))
		if !s.event(start.Add(time.Millisecond)) {
			t.Fatalf("%d members: an event did not bring the periodic step forward", tc.members)
		}
		if got := s.due.Sub(start); got != tc.want {
			t.Errorf("%d members: next step %v after the previous one, want %v", tc.members, got, tc.want)
		}
	}
}
