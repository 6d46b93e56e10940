package node

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/memlink"
)

// linkTo returns a live link to a node named peer, made on a network of
// its own, so that several distinct links to one peer name can be handed
// to a node as its transport would.
func linkTo(t *testing.T, peer string) links.Link {
	t.Helper()
	nw := memlink.NewNetwork(memlink.Config{})
	var trs []*memlink.Transport
	for _, name := range []string{"a", peer} {
		tr, err := nw.Transport(memlink.TransportConfig{Name: name, Mesh: "test"})
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, tr)
	}
	t.Cleanup(func() {
		for _, tr := range trs {
			tr.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := trs[0].Dial(ctx, peer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A link replaced by another to the same peer: the old link's LinkDown and
// the new link's LinkUp come from different goroutines at about the same
// time. Whatever their interleaving, routing ends up with the peer as a
// neighbour, as the node ends up with the new link.
func TestReplacedLinkLeavesPeerRouted(t *testing.T) {
	c := newCluster(t, false)
	a := c.add("a")
	ls := []links.Link{linkTo(t, "p"), linkTo(t, "p")}
	// The links here replace each other within microseconds, 300 times:
	// a penalty that decays at once keeps flap damping (flapdamp.go) from
	// holding them, which is not what this test is about.
	a.linkEvents.Lock()
	a.flaps.halfLife = time.Nanosecond
	a.linkEvents.Unlock()
	(*linkHandler)(a).LinkUp(ls[0])
	for i := range 300 {
		old, repl := ls[i%2], ls[(i+1)%2]
		// Routing is busy (its lock held) while both events arrive, the
		// LinkDown first, so that both may wait for it.
		a.router.mu.Lock()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			(*linkHandler)(a).LinkDown(old, links.ErrLinkLost)
		}()
		for a.link("p") == old {
			runtime.Gosched()
		}
		go func() {
			defer wg.Done()
			(*linkHandler)(a).LinkUp(repl)
		}()
		time.Sleep(time.Millisecond) // lets LinkUp run as far as it may
		a.router.mu.Unlock()
		wg.Wait()
		if a.link("p") != repl {
			t.Fatalf("round %d: the node does not hold the new link", i)
		}
		if p, _ := a.Peer("p"); !p.Reachable || p.NextHop != "p" {
			t.Fatalf("round %d: the node holds a link to p but routing says %+v", i, p)
		}
	}
}
