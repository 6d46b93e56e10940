package routing_test

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// A neighbour whose link is up but that never sent a message has only the
// implicit route LinkUp makes: it is reachable, and not announced. Once
// its own advertisement arrives, it is.
func TestAnnounced(t *testing.T) {
	e, err := routing.New(routing.Config{Self: "a"})
	if err != nil {
		t.Fatal(err)
	}
	e.LinkUp(time.Unix(0, 0), "m", 10, false)
	if _, ok := e.NextHop("m"); !ok {
		t.Fatal("a neighbour just linked is not reachable by its implicit route")
	}
	if e.Announced("m") {
		t.Fatal("a neighbour that sent nothing counts as announced")
	}
	if e.Announced("zz") {
		t.Fatal("a node that is no neighbour counts as announced")
	}

	n := newNet(t, 1, routing.Config{}, "a", "b")
	mustLink(t, n, "a", "b", 10)
	quiet(t, n)
	if !n.Engine("a").Announced("b") || !n.Engine("b").Announced("a") {
		t.Fatal("neighbours that exchanged their tables are not announced")
	}
}
