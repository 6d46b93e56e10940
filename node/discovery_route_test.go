package node

import (
	"maps"
	"testing"
	"time"
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
	}
	want := map[string]time.Duration{"a": ms(6), "b": ms(6), "c": ms(3)}
	if got := routeLatency(routes, current); !maps.Equal(got, want) {
		t.Errorf("route latencies %v, want %v", got, want)
	}
}
