package node

import (
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackDeadEndRequestsCutNodeOff (QUIC, certified): o-y, y-x, x-a,
// a-b, b-o; m, a member with a valid certificate, is linked to x only
// and is on no path. a reaches o via b. m sends x, every millisecond, a
// seqno request for o at o's seqno + 0x7fff with hop count 2: x forwards
// it to y with hop count 1, where it dies. The a-b link goes down: a's
// route via x is unfeasible, and a asks through x for a new seqno of o.
// Before, x forwarded no other request for o within 100 ms of m's, a's
// never reached o, and a had no route to o for the 20 s the test waited
// (3 runs of 3); without m, 11 to 23 ms. Now a reaches o via x as
// without m.
func TestAttackDeadEndRequestsCutNodeOff(t *testing.T) {
	c := newCluster(t, true)
	// Pinned costs: a-b and b-o 100, every other link 1000, so that a's
	// route via x (3000) is far beyond its feasibility distance.
	cheap := map[string]string{"a": "b", "b": "a", "o": "b"}
	c.tweak = func(cfg *Config) {
		cfg.LinkCosts = map[string]links.Cost{}
		for _, p := range []string{"a", "b", "m", "o", "x", "y"} {
			cfg.LinkCosts[p] = 1000
		}
		if cheap[cfg.Name] != "" {
			cfg.LinkCosts[cheap[cfg.Name]] = 100
		}
		if cfg.Name == "b" {
			cfg.LinkCosts["o"] = 100
		}
	}
	c.build("o-y", "y-x", "x-a", "a-b", "b-o", "m-x")
	c.waitRoute("a", "o", 2)
	c.waitRoute("m", "o", 0) // via x and y, or x, a and b: m is on no path
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l := c.mustLink("m", "x")
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			_ = l.SendRouting(seqnoRequestHops("o", routeSeqno(c.nodes["x"], "o")+0x7fff, 2))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	time.Sleep(300 * time.Millisecond) // m's requests hold x's window before the failure
	start := time.Now()
	if err := c.nodes["a"].Unlink(c.nodes["b"].Addr().String()); err != nil {
		t.Fatal(err)
	}
	for {
		if p, ok := c.nodes["a"].Peer("o"); ok && p.Reachable && p.NextHop == "x" {
			t.Logf("a reached o via x %v after its link to b went down", time.Since(start))
			return
		}
		if time.Since(start) > 10*time.Second {
			p, _ := c.nodes["a"].Peer("o")
			t.Fatalf("a had no route to o via x 10 s after its link to b went down (o raised its seqno %d times): %+v", routerStats(c.nodes["o"]).SeqnoBumps, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
