package routing

import (
	"testing"
	"unsafe"
)

// One origin exists per destination at every node: a 5000-node mesh holds
// 25 million of them in a simulation. Its fields are ordered so that it
// takes no padding; with room for three routes of 24 bytes it takes 192.
func TestOriginEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(origin{}); s > 192 {
		t.Fatalf("origin takes %d bytes, want at most 192", s)
	}
	if s := unsafe.Sizeof(routeEntry{}); s > 24 {
		t.Fatalf("routeEntry takes %d bytes, want at most 24", s)
	}
}

// A slab of table entries (with the allocator's 8-byte header for objects
// holding pointers) fits the 8,192-byte size class with little left over:
// a slab just over a size class takes the next one.
func TestOriginSlabFillsItsSizeClass(t *testing.T) {
	size := originSlab*unsafe.Sizeof(origin{}) + 8
	if size > 8192 || size < 8192*9/10 {
		t.Fatalf("a slab of %d entries takes %d bytes, want 90-100 %% of 8192", originSlab, size)
	}
}

// A cold start emits one or two events per destination at every node
// (153 MB at 1000 nodes before their fields were ordered by size).
func TestEventSize(t *testing.T) {
	if s := unsafe.Sizeof(Event{}); s > 80 {
		t.Fatalf("Event takes %d bytes, want at most 80", s)
	}
}

// Routes beyond the three held in the entry move out together and keep
// their order through removals, as when they all fit.
func TestOriginRoutesBeyondTheEntry(t *testing.T) {
	var nbs [5]neighbour
	var o origin
	for i := range nbs {
		o.upsert(routeEntry{nb: &nbs[i], metric: Metric(i)})
	}
	o.upsert(routeEntry{nb: &nbs[2], metric: 20}) // replaces, adds nothing
	if !o.remove(&nbs[1]) || o.remove(&nbs[1]) {
		t.Fatal("remove of a route held once did not succeed exactly once")
	}
	o.removeAt(0)
	var got []Metric
	for _, r := range o.routes() {
		got = append(got, r.metric)
	}
	if len(got) != 3 || got[0] != 20 || got[1] != 3 || got[2] != 4 {
		t.Fatalf("metrics %v, want [20 3 4]", got)
	}
	if o.find(&nbs[4]) != 2 || o.find(&nbs[0]) != -1 {
		t.Fatalf("find: %d, %d; want 2, -1", o.find(&nbs[4]), o.find(&nbs[0]))
	}
	var small origin
	small.upsert(routeEntry{nb: &nbs[0], metric: 1})
	small.upsert(routeEntry{nb: &nbs[1], metric: 2})
	small.removeAt(0)
	if rs := small.routes(); len(rs) != 1 || rs[0].nb != &nbs[1] || small.inl[1].nb != nil {
		t.Fatalf("after removing the first of two: %+v (inl %+v)", rs, small.inl)
	}
}
