package memlink

import (
	"context"
	"errors"
	"testing"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestHaltTellsNoEnd: after Halt no routing payload arrives, no dial
// succeeds, and a transport's Close takes down only its own ends: its
// peers learn of it only when they close themselves (ErrClosed, not
// ErrLinkLost), as do the peers of a node killed after the halt.
func TestHaltTellsNoEnd(t *testing.T) {
	n := NewNetwork(Config{})
	ns := newNodes(t, n, "a", "b", "c", "d")
	ab := dial(t, ns[0].t, "b")
	dial(t, ns[0].t, "c")
	dial(t, ns[3].t, "b")
	ns[0].rec.waitForUnordered(t, "up b", "up c")
	ns[1].rec.waitForUnordered(t, "up a", "up d")
	n.Halt()
	if err := ab.SendRouting([]byte("lost")); err != nil {
		t.Fatalf("send on a halted network: %v (want it silently lost)", err)
	}
	if _, err := ns[2].t.Dial(context.Background(), "d"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("dial on a halted network: %v, want ErrUnreachable", err)
	}
	if err := ab.Err(); err != nil {
		t.Fatalf("the halt reported a link down: %v", err)
	}
	ns[0].t.Close() // a closes: b and c are not told
	n.Kill("d")     // d dies: b is not told
	ns[0].rec.waitForUnordered(t, "up b", "up c", "down b", "down c")
	ns[1].t.Close()
	ns[2].t.Close()
	ns[1].rec.waitForUnordered(t, "up a", "up d", "down a", "down d")
	ns[2].rec.waitFor(t, "up a", "down a")
	for _, tc := range []struct {
		rec  *recorder
		peer string
	}{{ns[1].rec, "a"}, {ns[1].rec, "d"}, {ns[2].rec, "a"}} {
		tc.rec.mu.Lock()
		err := tc.rec.down[tc.peer]
		tc.rec.mu.Unlock()
		if !errors.Is(err, links.ErrClosed) || errors.Is(err, links.ErrLinkLost) {
			t.Errorf("the link to %s went down with %v, want its own close (ErrClosed): the network told of the peer's departure", tc.peer, err)
		}
	}
	if got := ns[1].rec.snapshot(); len(got) != 4 {
		t.Errorf("b's events %q: a routing payload crossed the halted network", got)
	}
}
