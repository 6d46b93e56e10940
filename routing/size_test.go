package routing

import (
	"testing"
	"unsafe"
)

// One origin exists per destination at every node: a 5000-node mesh holds
// 25 million of them in a simulation. Its fields are ordered so that it
// takes no padding; with room for three routes it stays in the 288-byte
// size class (what it took before in two allocations: 192 bytes for the
// entry, 96 for its routes).
func TestOriginEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(origin{}); s > 288 {
		t.Fatalf("origin takes %d bytes, want at most 288", s)
	}
	if s := unsafe.Sizeof(routeEntry{}); s > 32 {
		t.Fatalf("routeEntry takes %d bytes, want at most 32", s)
	}
}
