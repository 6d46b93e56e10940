package routing

import (
	"testing"
	"unsafe"
)

// One origin exists per destination at every node: a 5000-node mesh holds
// 25 million of them in a simulation. Its fields are ordered so that it
// takes no padding; this keeps it in the 192-byte size class.
func TestOriginEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(origin{}); s > 192 {
		t.Fatalf("origin takes %d bytes, want at most 192", s)
	}
	if s := unsafe.Sizeof(routeEntry{}); s > 32 {
		t.Fatalf("routeEntry takes %d bytes, want at most 32", s)
	}
}
