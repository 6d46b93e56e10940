package routing

import (
	"testing"
	"unsafe"
)

// One origin exists per destination at every node: a 5000-node mesh holds
// 25 million of them in a simulation. Its fields are ordered so that it
// takes no padding; with room for three routes of 24 bytes it takes 216.
func TestOriginEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(origin{}); s > 216 {
		t.Fatalf("origin takes %d bytes, want at most 216", s)
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
	if s := unsafe.Sizeof(Event{}); s > 72 {
		t.Fatalf("Event takes %d bytes, want at most 72", s)
	}
}
