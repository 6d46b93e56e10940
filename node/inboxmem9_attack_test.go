package node

import (
	"runtime"
	"testing"
	"time"
	"weak"
)

// A routing message the router's inbox delivered is not kept: its payload
// is free for the collector once the engine is done with it. Before, the
// inbox's array of entries, reused at the next take, held the payloads it
// had delivered until then, which could be never: up to 4 MiB a neighbour
// had sent while the engine was busy stayed in memory beside the 4 MiB the
// inbox may hold.
func TestRouterInboxKeepsNoDeliveredPayload(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	a := c.node("a")
	c.waitRoute("a", "b", 1)
	payload := make([]byte, 200<<10) // within a neighbour's share, malformed
	payload[0] = 3
	kept := weak.Make(&payload[0])
	a.router.mu.Lock()
	ok := a.router.in.put(inboxMsg{peer: "b", payload: payload})
	a.router.mu.Unlock()
	if !ok {
		t.Fatal("a's empty inbox refused a message of 200 KiB")
	}
	payload = nil
	a.router.apply(func(time.Time) {}) // delivers the inbox
	runtime.GC()
	runtime.GC()
	if kept.Value() != nil {
		t.Error("the payload of a routing message a's inbox delivered is still held after a collection")
	}
}
