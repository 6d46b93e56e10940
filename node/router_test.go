package node

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestHeldRoutingUpdateLeavesAtTheGap: a route change that the triggered
// update rate limit (routing.DefaultMinTriggeredInterval, 50 ms) holds
// back leaves when the limit allows, not at the next periodic refresh
// (a minute away here): the router's tick loop, asleep until that
// refresh, wakes for the earlier deadline. Virtual time, so the bound is
// exact: nothing but that deadline sends b's second update in time.
func TestHeldRoutingUpdateLeavesAtTheGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, false)
		c.tweak = func(cfg *Config) { cfg.Routing.UpdateInterval = time.Minute }
		c.build("a-b")
		c.waitRoute("a", "b", 1)
		time.Sleep(5 * time.Second) // b's loop now sleeps until its refresh
		synctest.Wait()

		// b's update about d goes to a at once (nothing went to a for
		// seconds); the one about e, right after, is held by the limit.
		c.build("b-d")
		c.waitRoute("a", "d", 2)
		start := time.Now()
		c.build("b-e")
		p := c.waitRoute("a", "e", 2)
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Fatalf("a learned the route to e %v after b linked to it (want about the 50 ms rate limit, well before b's refresh a minute on): %+v", took, p)
		}
		t.Logf("a learned the route to e %v after b linked to it", time.Since(start))
	})
}
