package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// TestRestartBelowItsOldSeqnoCatchesUp: a node that issued 50 seqnos
// (certificate renewals) restarts under the same name, so its engine
// starts again at its first seqno, below the one every other node holds
// as its feasibility distance. A node three hops away reaches it again
// within seconds: the restarted node takes the seqno a request asks for
// (or its own signature from before the restart).
func TestRestartBelowItsOldSeqnoCatchesUp(t *testing.T) {
	cfg := routing.Config{Certifier: plainCertifier{}}
	n := newNet(t, 1, cfg, "a", "b", "c", "d")
	mustLink(t, n, "a", "b", 10)
	mustLink(t, n, "b", "c", 10)
	mustLink(t, n, "c", "d", 10)
	quiet(t, n)
	for range 50 {
		n.Engine("a").NewSeqno(n.Now)
		n.RunFor(100 * time.Millisecond)
	}
	quiet(t, n)
	before, _ := n.Engine("d").Lookup("a")
	n.Kill("a")
	n.RunFor(2 * time.Second)
	if err := n.AddNode(routing.Config{Self: "a", Seed: 1, Certifier: cfg.Certifier}); err != nil {
		t.Fatal(err)
	}
	mustLink(t, n, "a", "b", 10)
	start := n.Now
	for n.Now.Sub(start) < 10*time.Second {
		n.RunFor(100 * time.Millisecond)
		if r, ok := n.Engine("d").Lookup("a"); ok && r.Reachable {
			t.Logf("d reaches the restarted a after %v (seqno %d; %d before the restart)", n.Now.Sub(start), r.Seqno, before.Seqno)
			return
		}
	}
	r, _ := n.Engine("d").Lookup("a")
	t.Fatalf("d does not reach a 10 s after its restart: %+v (it held seqno %d before)", r, before.Seqno)
}
