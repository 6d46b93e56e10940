package node

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestDrainingPeerOverridesAPinnedCost: a node that pinned its link to a
// neighbour low still routes around that neighbour once it drains, while
// the link is up and carries the circuits already crossing it.
func TestDrainingPeerOverridesAPinnedCost(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.GracePeriod = 2 * time.Minute // b drains while a circuit crosses it
		}
	}
	c.build("a-b", "b-c", "a-c")
	a, b := c.node("a"), c.node("b")
	if err := a.SetLinkCost("b", links.MinCost); err != nil {
		t.Fatal(err)
	}
	if err := a.SetLinkCost("c", 1_000_000); err != nil {
		t.Fatal(err)
	}
	c.waitNextHop("a", "c", "b")
	conn, err := a.Dial(ctxT(t, patience), "c", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()

	// The route moves to the direct link and stays there: a route
	// through b that comes back (as a periodic update from b would bring
	// it at the pinned cost) is the defect.
	deadline := time.Now().Add(30 * time.Second)
	var since time.Time
	for since.IsZero() || time.Since(since) < 2*time.Second {
		p, _ := a.Peer("c")
		switch {
		case p.Reachable && p.NextHop == "c":
			if since.IsZero() {
				since = time.Now()
			}
		case !since.IsZero():
			t.Fatalf("a's route to c went back to %+v while b drains", p)
		case time.Now().After(deadline):
			t.Fatalf("a still routes to c by %+v 30 s after b began draining", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var toB *LinkInfo
	for _, l := range a.Links() {
		if l.Peer == "b" {
			toB = &l
		}
	}
	if toB == nil {
		t.Fatal("a's link to b went down during b's grace period: the route moved for that, not for the drain")
	}
	if !toB.Pinned || toB.Cost != links.Cost(1<<24) {
		t.Fatalf("a's link to draining b: %+v, want pinned and at the highest cost", *toB)
	}
	conn.Close()
	select {
	case <-closed:
	case <-time.After(patience):
		t.Fatal("b's Close did not end after its last circuit closed")
	}
}
