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

// A hello is a message: a neighbour that sent one spoke routing, though
// it advertised nothing (a node holding the link from its engine sends
// one), and so did one whose routes do not fit a full table. A new link
// starts unannounced again.
func TestAnnouncedByAnyMessage(t *testing.T) {
	e, err := routing.New(routing.Config{Self: "a", MaxRoutes: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(0, 0)
	e.LinkUp(now, "m", 10, false)
	e.LinkUp(now, "n", 10, false) // the table is full: no entry for n
	if e.Announced("n") {
		t.Fatal("a neighbour that sent nothing counts as announced")
	}
	for _, nb := range []string{"m", "n"} {
		if err := e.Receive(now, nb, routing.Hello()); err != nil {
			t.Fatal(err)
		}
		if !e.Announced(nb) {
			t.Fatalf("%s sent a hello and does not count as announced", nb)
		}
	}
	e.LinkUp(now, "n", 10, false) // a new link to n
	if e.Announced("n") {
		t.Fatal("a new link counts as announced before its peer sent anything on it")
	}
}
