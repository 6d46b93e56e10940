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
