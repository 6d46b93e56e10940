package node

import (
	"testing"
	"time"
)

// TestDialTriesAnotherNextHopWhenRelayHasNoRoute: a dial goes to the next
// hop routing chose, whose own route to the destination went away while
// the open travelled (a route changing under it, as while a mesh
// converges): the relay refuses `no route`. The source then tries the
// other next hops routing offers, without waiting, and reaches the
// destination through another. Before, the relay's refusal ended the
// dial, although a route through another neighbour existed (a diamond's
// other side here; a grid's routes settling, in
// TestResumeGridFiveRelayCrashes).
func TestDialTriesAnotherNextHopWhenRelayHasNoRoute(t *testing.T) {
	c := newCluster(t, false)
	// A relay refuses at once when it has no route: no wait for one.
	c.tweak = func(cfg *Config) { cfg.RouteWait = time.Nanosecond }
	c.build("a-b", "a-c", "b-d", "c-d")
	c.waitConverged()
	a := c.nodes["a"]
	// Both sides of the diamond offered: a converged mesh has a route to
	// every node, not yet every alternative, and without the other side
	// a's dial would fail for want of any route, not through the relay.
	var hops []string
	waitFor(t, "a to have two next hops to d", patience, func() bool {
		hops = a.router.nextHops("d")
		return len(hops) >= 2
	})
	via := hops[0]
	// The open, the relay's answer and the relay's routing updates take
	// 300 ms between a and via: a still routes through via when via has
	// lost d.
	c.memNet.SetPath("a", via, 300*time.Millisecond, 0)
	c.memNet.Cut(via, "d")
	if err := roundTrip(t, a, "d", EchoService, []byte("around")); err != nil {
		t.Fatalf("dial from a to d through %s, which lost its route to d, with a route through the other side: %v", via, err)
	}
}
