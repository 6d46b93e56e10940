package node

import (
	"maps"
	"testing"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// TestStrandedRoutes: a's routes to b and c go through b, and its other
// neighbour d is farther from both than a is (d's route to b goes through
// a; its route to c costs 30, a's 20): neither has a feasible alternate,
// so closing a-b would strand both until newer seqnos came. A direct link
// to c gives c an alternate that is always feasible; b still has none.
func TestStrandedRoutes(t *testing.T) {
	net := routingtest.New(1)
	for _, name := range []string{"a", "b", "c", "d"} {
		if err := net.AddNode(routing.Config{Self: name}); err != nil {
			t.Fatal(err)
		}
	}
	link := func(x, y string, cost routing.Metric) {
		t.Helper()
		if err := net.Link(x, y, cost); err != nil {
			t.Fatal(err)
		}
		if _, ok := net.RunUntilQuiet(1000); !ok {
			t.Fatal("routing did not settle")
		}
	}
	link("a", "b", 10)
	link("b", "c", 10)
	link("a", "d", 10)
	link("d", "c", 30)
	r := &router{eng: net.Engine("a")}
	dests := []string{"a", "b", "c", "d"}
	peers := map[string]bool{"b": true, "d": true}
	// d's own route: b reaches d only through a (poisoned towards a).
	want := map[string]int{"b": 2, "d": 1}
	if got := r.stranded("a", dests, peers); !maps.Equal(got, want) {
		t.Errorf("stranded %v, want %v", got, want)
	}
	link("a", "c", 25)
	peers["c"] = true
	want = map[string]int{"b": 1, "d": 1}
	if got := r.stranded("a", dests, peers); !maps.Equal(got, want) {
		t.Errorf("with a direct link to c: stranded %v, want %v", got, want)
	}
}
