package node

import (
	"sync"
	"testing"
	"time"
)

// waitInbox waits up to d until n's router inbox holds k routing
// messages from peer, and reports whether it did.
func waitInbox(n *Node, peer string, k int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for inboxFrom(n, peer) < k {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitInboxSettled waits up to d until n's router inbox holds routing
// messages from peer and has taken no more of them for half a second (the
// peer's link can queue no more), and returns how many it holds.
func waitInboxSettled(n *Node, peer string, d time.Duration) int {
	deadline := time.Now().Add(d)
	k, since := 0, time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if now := inboxFrom(n, peer); now != k {
			k, since = now, time.Now()
		} else if k > 0 && time.Since(since) >= 500*time.Millisecond {
			break
		}
	}
	return k
}

// TestAttackFloodingNeighbourTakesTheRouterInbox: m, a neighbour of a with
// a valid certificate, sends a routing messages of 3 bytes as fast as its
// link takes them while a's routing is busy (its lock held, as on a
// starved process) past the expiry of a's routes via its honest neighbour
// h. Before, m's messages filled the inbox all of a's links share (4,096
// messages):
// h's summaries, arriving after, found it full, and h's read loop waited
// for the lock with the first of them, behind the ticker due to expire
// the routes those summaries refresh. Now a neighbour's messages hold at
// most its share of the inbox: h's summaries wait in it, and a's routing
// delivers them, at their arrival, before it expires anything. Link costs
// are pinned (pinCosts).
func TestAttackFloodingNeighbourTakesTheRouterInbox(t *testing.T) {
	const interval = 200 * time.Millisecond // routes expire after 3.5 of them
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Routing.UpdateInterval = interval
		pinCosts(cfg, "a", "h", "c", "m")
	}
	c.build("a-h", "h-c", "m-a")
	a, h, m := c.node("a"), c.node("h"), c.node("m")
	c.waitRoute("a", "c", 2)
	c.waitRoute("a", "m", 1) // a's routing has m's link: its messages reach a's inbox
	l := c.mustLink("m", "a")
	evs, stop, err := a.Subscribe(256)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	quit := make(chan struct{})
	var flood sync.WaitGroup
	flood.Add(1)
	go func() {
		defer flood.Done()
		msg := []byte{3, 0, 1} // one entry announced, none there: malformed
		for {
			select {
			case <-quit:
				return
			default:
			}
			if l.SendRouting(msg) != nil {
				time.Sleep(time.Millisecond)
				if ml := m.link("a"); ml != nil {
					l = ml // the link a duplicate replaced
				}
			}
		}
	}()
	stopFlood := sync.OnceFunc(func() { close(quit); flood.Wait() })
	defer stopFlood()

	// a's and h's routing busy: h sends a nothing meanwhile, a's routes
	// via h pass their expiry, and m's flood reaches a's inbox.
	a.router.mu.Lock()
	h.router.mu.Lock()
	busy := time.Now()
	fromM := waitInboxSettled(a, "m", patience)
	time.Sleep(time.Until(busy.Add(6 * interval)))
	h.router.mu.Unlock()
	// h's summaries reach a while a's routing is still busy and m floods
	// it (four messages from h span at least one of h's summaries).
	queued := waitInbox(a, "h", 4, 10*time.Second)
	fromH := inboxFrom(a, "h")
	a.router.mu.Unlock()
	stopFlood()
	t.Logf("a's inbox held %d of m's messages, then %d of h's", fromM, fromH)
	if fromM == 0 {
		t.Fatal("m's flood did not reach a's inbox")
	}
	if !queued {
		t.Errorf("a's inbox took %d of h's routing messages while m flooded it (want 4): h's read loop waited for a's routing", fromH)
	}

	for _, peer := range peersDownSoFar(a, evs) {
		if peer == "c" || peer == "h" {
			t.Errorf("a lost its route to %s while m flooded its inbox", peer)
		}
	}
	if p, _ := a.Peer("c"); !p.Reachable || p.NextHop != "h" {
		t.Errorf("a's route to c after m's flood: %+v", p)
	}
}
