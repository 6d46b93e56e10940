package routing_test

import (
	"testing"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// holdMesh builds the mesh of the hold tests, every cost multiplied by
// scale: S reaches A over two hops, the second a costly link (P-A, 150),
// and over three cheaper ones (S-Q-R-A, 30 in all); Y hangs off A.
//
//	S -10- P -150- A -10- Y
//	S -10- Q -10- R -10- A
func holdMesh(t *testing.T, scale routing.Metric) *routingtest.Network {
	t.Helper()
	n := routingtest.New(1)
	for _, name := range []string{"A", "P", "Q", "R", "S", "Y"} {
		c := propCfg()
		c.Self = name
		if err := n.AddNode(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []struct {
		a, b string
		cost routing.Metric
	}{{"S", "P", 10}, {"P", "A", 150}, {"S", "Q", 10}, {"Q", "R", 10}, {"R", "A", 10}, {"A", "Y", 10}} {
		mustLink(t, n, l.a, l.b, l.cost*scale)
	}
	return n
}

// countFinite counts the finite updates for origin that from sends to to.
func countFinite(t *testing.T, n *routingtest.Network, from, to, origin string) *[]routing.Metric {
	t.Helper()
	var sent []routing.Metric
	n.OnSend = func(f, dst string, payload []byte) {
		if f != from || dst != to {
			return
		}
		ups, err := routing.DecodeUpdates(payload)
		if err != nil {
			t.Errorf("%s -> %s: %v", f, dst, err)
			return
		}
		for _, u := range ups {
			if u.Origin == origin && u.Metric < routing.DefaultInfinity {
				sent = append(sent, u.Metric)
			}
		}
	}
	return &sent
}

// A node that first hears of a destination over a costly link, while it
// has a cheap one, holds its announcement for one interval: the cheaper
// route of more hops arrives meanwhile, and its neighbour is told the
// destination once, at the shortest metric, instead of twice.
func TestNewDestinationOverCostlyLinkAnnouncedOnce(t *testing.T) {
	n := holdMesh(t, 1)
	sent := countFinite(t, n, "A", "Y", "S")
	runChecked(t, n, 50)
	checkShortest(t, n, 0)
	if len(*sent) != 1 || (*sent)[0] != 30 {
		t.Fatalf("A told Y the metrics %v for S, want [30] (the first route heard, over the costly link, held until the cheaper one came)", *sent)
	}
}

// Where every link of the node is costly, no path is cheap, and a hold
// would only slow the first announcement down: nothing is held, every
// node announces S in the round it hears of it (Y, three hops away,
// hears of it in round 3), and the cheaper route of more hops follows
// the first one.
func TestNoHoldWithoutCheapLink(t *testing.T) {
	n := holdMesh(t, 20) // A's links cost 3,000, 200 and 200
	sent := countFinite(t, n, "A", "Y", "S")
	stepChecked(t, n, 3)
	if r, ok := n.Engine("Y").Lookup("S"); !ok || r.Metric != 3400 {
		t.Fatalf("Y's route to S after 3 rounds: %+v, want metric 3400 (no hold on the way)", r)
	}
	runChecked(t, n, 50)
	checkShortest(t, n, 0)
	if len(*sent) != 2 || (*sent)[0] != 3200 || (*sent)[1] != 600 {
		t.Fatalf("A told Y the metrics %v for S, want [3200 600] (no hold)", *sent)
	}
}

// A destination announced before is never held: when the cheap path is
// lost, the costly route goes out with the next batch (a failover), and
// so does the cheap one when it comes back.
func TestAnnouncedDestinationNotHeld(t *testing.T) {
	n := holdMesh(t, 1)
	runChecked(t, n, 50)
	metricAt := func(node string) routing.Metric {
		r, _ := n.Engine(node).Lookup("S")
		return r.Metric
	}
	if err := n.Unlink("R", "A"); err != nil {
		t.Fatal(err)
	}
	// A switched to P at once (LinkDown); Y hears it in the next round
	// (the rate limit of A's batches to Y had run out long ago).
	stepChecked(t, n, 1)
	if m := metricAt("Y"); m != 170 {
		t.Fatalf("Y's metric for S %d a round after the cheap link went down, want 170", m)
	}
	if err := n.Relink("R", "A"); err != nil {
		t.Fatal(err)
	}
	// R tells A again (the link is new: R sends its table), A switches
	// back and tells Y in the round after.
	stepChecked(t, n, 2)
	if m := metricAt("Y"); m != 40 {
		t.Fatalf("Y's metric for S %d two rounds after the cheap link came back, want 40", m)
	}
	runChecked(t, n, 50)
	checkShortest(t, n, 0)
}
