package routing

import (
	"slices"
	"testing"
)

// TestAdvertisers: a neighbour whose route is unfeasible is not a next
// hop, but Advertisers lists it after the selected one, and drops a
// neighbour that withdrew its route.
func TestAdvertisers(t *testing.T) {
	e := newEngine(t, Config{})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	mustReceive(t, e, t0, "b", update("d", 5, 10))
	e.Tick(t0.Add(DefaultMinTriggeredInterval))    // we advertise d at 20
	mustReceive(t, e, t0, "c", update("d", 5, 50)) // 50 >= 20: unfeasible
	if hops := e.NextHops("d"); !slices.Equal(hops, []string{"b"}) {
		t.Fatalf("NextHops(d) = %v, want [b]", hops)
	}
	if got := e.Advertisers("d"); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("Advertisers(d) = %v, want [b c]", got)
	}
	mustReceive(t, e, t0, "c", update("d", 5, DefaultInfinity))
	if got := e.Advertisers("d"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Advertisers(d) after c withdrew = %v, want [b]", got)
	}
	if got := e.Advertisers("x"); got != nil {
		t.Fatalf("Advertisers of an unknown name = %v", got)
	}
}
