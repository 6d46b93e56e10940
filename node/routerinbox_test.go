package node

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// inboxFrom counts the messages from peer waiting in n's router inbox.
func inboxFrom(n *Node, peer string) int {
	q := &n.router.in
	q.mu.Lock()
	defer q.mu.Unlock()
	k := 0
	for _, m := range q.msgs {
		if m.peer == peer && !m.isCost {
			k++
		}
	}
	return k
}

// waitQueued waits, while the test holds n's routing lock, until n's
// router inbox holds k messages from peer; it lets the lock go if they
// never come.
func waitQueued(t *testing.T, n *Node, peer string, k int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for inboxFrom(n, peer) < k {
		if time.Now().After(deadline) {
			n.router.mu.Unlock()
			t.Fatalf("%s's link to %s queued %d routing messages while its routing was busy, want %d", n.Name(), peer, inboxFrom(n, peer), k)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A node whose routing is busy (a starved process: its router's lock held
// by a goroutine that is not run) past the expiry of the routes it learned
// from a neighbour, while the neighbour's summaries that refresh them
// arrive. Before, the link's read loop waited for the lock with the first
// of them, behind the routing ticker, which had waited since the routes'
// expiry: the routes expired, c went down, and came back only when the
// summary that followed asked for them again. Now the summaries wait in the
// inbox, the ticker delivers them before it expires anything, and a keeps
// its route to c throughout.
func TestRoutesOutliveBusyRouterWhenSummariesArrived(t *testing.T) {
	const interval = 200 * time.Millisecond // routes expire after 3.5 of them
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Routing.UpdateInterval = interval
		pinCosts(cfg, "a", "b", "c")
	}
	c.build("a-b", "b-c")
	a, b := c.node("a"), c.node("b")
	c.waitRoute("a", "c", 2)
	evs, stop, err := a.Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	// Both routers busy: b sends a nothing meanwhile, and a's routes via b
	// pass their expiry with a's ticker waiting for the lock.
	a.router.mu.Lock()
	b.router.mu.Lock()
	time.Sleep(6 * interval)
	b.router.mu.Unlock()
	// b's summaries reach a while a's routing is still busy: they wait
	// (four messages from b span at least one of b's summaries).
	waitQueued(t, a, "b", 4)
	a.router.mu.Unlock()

	// The first pass of a's routing after that delivers them, and ends
	// before a's routing lock is free again with the inbox empty; an
	// expiry in it is published within it.
	deadline := time.Now().Add(patience)
	for inboxFrom(a, "b") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a's routing left %d of b's messages queued", inboxFrom(a, "b"))
		}
		time.Sleep(time.Millisecond)
	}
	if down := peersDownSoFar(a, evs); len(down) > 0 {
		t.Fatalf("a lost its routes to %v while b's summaries refreshing them waited", down)
	}
	if p, _ := a.Peer("c"); !p.Reachable || p.NextHop != "b" {
		t.Fatalf("a's route to c after its routing was busy: %+v", p)
	}
}

// pinCosts makes cfg's node link over QUIC with the cost of its links to
// the named peers pinned (links.QUICConfig.StaticCost), so that routes'
// metrics do not follow the round trips a loaded machine measures: there
// the costs measured while a test held routing locks rose past what keeps
// a selected route, which was dropped as unfeasible (not expired) and
// back 16 ms later, failing tests about expiry.
func pinCosts(cfg *Config, peers ...string) {
	cost := map[string]links.Cost{}
	for _, p := range peers {
		cost[p] = 256
	}
	id, log := cfg.Identity, cfg.Logger
	cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
		return links.NewQUICTransport(links.QUICConfig{
			Identity: id, Role: role, ListenAddr: "127.0.0.1:0", Handler: h, Logger: log, StaticCost: cost,
		})
	}
}

// A link's read loop does not wait for a busy router: what it reads waits
// in the inbox, and the router delivers it when it is free.
func TestRoutingMessagesQueuedWhileRouterBusy(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Routing.UpdateInterval = 200 * time.Millisecond }
	c.build("a-b")
	a := c.node("a")
	c.waitRoute("a", "b", 1)
	a.router.mu.Lock()
	c.link("b", "c") // b announces c to a meanwhile
	waitQueued(t, a, "b", 2)
	a.router.mu.Unlock()
	c.waitRoute("a", "c", 2)
}

// peersDownSoFar waits for n's routing passes under way (those draining
// its inbox) and returns the peers of the PeerDown events evs holds.
func peersDownSoFar(n *Node, evs <-chan Event) []string {
	n.router.mu.Lock()
	n.router.mu.Unlock()
	var down []string
	for {
		select {
		case ev := <-evs:
			if ev.Kind == PeerDown {
				down = append(down, ev.Peer)
			}
		default:
			return down
		}
	}
}
