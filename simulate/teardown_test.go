package simulate

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node"
)

// TestCloseDoesNotReroute: a cluster going away does not re-route around
// the nodes that close first. The nodes close one at a time, so each node
// still runs while the nodes before it close; yet until its own close
// begins no node hears of a lost link or an unreachable peer.
func TestCloseDoesNotReroute(t *testing.T) {
	defer func(w int) { closeWorkers = w }(closeWorkers)
	closeWorkers = 1
	const n = 12
	c, err := NewCluster(Config{Backend: BackendMem})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, time.Minute)
	var names []string
	for i := 1; i <= n; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	if err := c.AddNodes(ctx, names...); err != nil {
		t.Fatal(err)
	}
	for i := range n { // a ring with chords: every node has another way round
		for _, j := range []int{(i + 1) % n, (i + n/2) % n} {
			if i < j {
				if err := c.Link(ctx, names[i], names[j], LinkParams{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if _, err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	// One timeline of every node's events and of the moments each node's
	// close began.
	type entry struct {
		node    string
		closing bool
		ev      node.Event
	}
	var (
		mu       sync.Mutex
		timeline []entry
	)
	c.closing = func(name string) {
		mu.Lock()
		timeline = append(timeline, entry{node: name, closing: true})
		mu.Unlock()
	}
	for _, name := range names {
		stop, err := c.Node(name).SubscribeFunc(func(ev node.Event) {
			mu.Lock()
			timeline = append(timeline, entry{node: name, ev: ev})
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	closing := map[string]bool{}
	ownLinksClosed := map[string]int{}
	for _, e := range timeline {
		switch {
		case e.closing:
			closing[e.node] = true
		case !closing[e.node]:
			t.Errorf("%s heard %s %s (%v) while it still ran: the mesh re-routed around a closing node", e.node, e.ev.Kind, e.ev.Peer, e.ev.Err)
		case e.ev.Kind == node.LinkDown && errors.Is(e.ev.Err, links.ErrClosed):
			ownLinksClosed[e.node]++
		}
	}
	for _, name := range names {
		if !closing[name] || ownLinksClosed[name] == 0 {
			t.Errorf("%s: closed %v, %d of its links closed by itself; want it closed with its links", name, closing[name], ownLinksClosed[name])
		}
	}
}

// TestOrderedCloseWaitsForQuiet: on an ordered cluster, a circuit whose
// client is still busy closing it when Close is called ends before the
// network stops, so no node is left holding it for its grace period: the
// close takes no virtual time however the goroutines were scheduled.
// Before Close waited for the cluster to be quiet, the network stopped
// while the client still ran, the relay and the server kept the circuit
// open, and Close took the 200 ms grace period and a linger.
func TestOrderedCloseWaitsForQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := NewCluster(Config{Backend: BackendMem, Ordered: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := c.AddNodes(ctx, "n1", "n2", "n3"); err != nil {
			t.Fatal(err)
		}
		for _, e := range [][2]string{{"n1", "n2"}, {"n2", "n3"}} {
			if err := c.Link(ctx, e[0], e[1], LinkParams{Latency: 2 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitConverged(ctx); err != nil {
			t.Fatal(err)
		}
		conn, err := c.Node("n1").Dial(ctx, "n3", SinkService)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte("through n2")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the data reached n3
		go func() {
			for range 20000 { // still running, never blocked, when Close begins
				runtime.Gosched()
			}
			conn.Close()
		}()
		start := time.Now()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v of virtual time, want 0: a node still held the circuit its client was closing", d)
		}
	})
}
