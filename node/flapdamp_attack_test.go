package node

import (
	"context"
	"testing"
	"time"
)

// TestAttackLinkCyclingIsDamped: m, a member with a valid certificate,
// closes its link to v and links again, over and over, for the price of a
// handshake each time. Each cycle made v send m its whole table and made
// the mesh withdraw and announce again every route through m. v now
// holds m's link from routing once m's links came up too often, so that
// routing (and v's subscribers) stop following m's cycles, and gives it
// back once m stops.
func TestAttackLinkCyclingIsDamped(t *testing.T) {
	c := newCluster(t, true)
	c.build("v-h", "h-w", "m-v")
	c.waitRoute("w", "m", 3)
	v, m := c.nodes["v"], c.nodes["m"]
	for _, n := range []*Node{v, m} { // holds of seconds, not a minute
		n.linkEvents.Lock()
		n.flaps.halfLife = 8 * time.Second
		n.linkEvents.Unlock()
	}
	ups := make(chan Event, 256)
	stop, err := v.SubscribeFunc(func(ev Event) {
		if ev.Kind == LinkUp && ev.Peer == "m" {
			select {
			case ups <- ev:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	before := v.RoutingStats()

	const cycles = 12
	addr := v.Addr().String()
	for i := range cycles {
		if err := m.Unlink(addr); err != nil {
			t.Fatalf("cycle %d: unlink: %v", i, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		err := m.Link(ctx, addr)
		cancel()
		if err != nil {
			t.Fatalf("cycle %d: link: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := len(ups)
	after := v.RoutingStats()
	t.Logf("%d cycles: v's routing heard of %d of m's links; v sent %d routing messages",
		cycles, seen, after.MessagesOut-before.MessagesOut)
	// A penalty of one per quick cycle, halving every 8 s, reaches the
	// hold at the 5th link when links come every ~100 ms, and at the 7th
	// when a loaded machine spaces them 2 s apart (with a half-life of a
	// second, links a second apart never reached it).
	if seen > cycles/2+2 {
		t.Fatalf("v's routing heard of %d of %d quick links from m: flapping is not damped", seen, cycles)
	}
	// Once m stops, its link reaches routing again and w reaches m.
	c.waitRoute("w", "m", 3)
}
