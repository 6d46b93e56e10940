package routing_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// TestHonestFlapThenSettle: o-a-n-v (cost 10 each), o-b-n (50+50) and
// v-c-o (30+30). The a-n link flaps honestly (down downFor, up upFor) a
// few times and then stays up: v must route o at the shortest metric
// (30) as soon as the flapping ends. Damping that counted a loss with
// the link, or after any move of the feasibility distance, had n send
// its floor and v keep the route through c for up to 29 s.
func TestHonestFlapThenSettle(t *testing.T) {
	for _, c := range []struct {
		name           string
		flaps          int
		downFor, upFor time.Duration
	}{
		{"fast", 6, 500 * time.Millisecond, 1500 * time.Millisecond},
		{"slow", 6, 3 * time.Second, 3 * time.Second},
		{"single", 2, 2 * time.Second, 10 * time.Second},
		{"long", 20, 3 * time.Second, 3 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := routingtest.New(1)
			for _, s := range []string{"o", "a", "b", "c", "n", "v"} {
				if err := n.AddNode(routing.Config{Self: s, Certifier: plainCertifier{}}); err != nil {
					t.Fatal(err)
				}
			}
			mustLink(t, n, "o", "a", 10)
			mustLink(t, n, "a", "n", 10)
			mustLink(t, n, "n", "v", 10)
			mustLink(t, n, "o", "b", 50)
			mustLink(t, n, "b", "n", 50)
			mustLink(t, n, "v", "c", 30)
			mustLink(t, n, "c", "o", 30)
			n.RunFor(10 * time.Second)
			if r, _ := n.Engine("v").Lookup("o"); r.Metric != 30 {
				t.Fatalf("before: v routes o %+v", r)
			}
			for range c.flaps {
				if err := n.Unlink("a", "n"); err != nil {
					t.Fatal(err)
				}
				n.RunFor(c.downFor)
				if err := n.Relink("a", "n"); err != nil {
					t.Fatal(err)
				}
				n.RunFor(c.upFor)
			}
			start := n.Now
			for n.Now.Sub(start) < 120*time.Second {
				rn, _ := n.Engine("n").Lookup("o")
				rv, _ := n.Engine("v").Lookup("o")
				if rv.Metric == 30 && rn.Metric == 20 {
					break
				}
				n.StepRound()
			}
			rv, _ := n.Engine("v").Lookup("o")
			rn, _ := n.Engine("n").Lookup("o")
			t.Logf("n %+v", rn)
			t.Logf("v settled on %+v %v after the flapping ended (%s)", rv, n.Now.Sub(start), fmt.Sprintf("damped=%d", n.Engine("n").Stats().Damped))
			if d := n.Now.Sub(start); d > 2*time.Second {
				t.Errorf("v took %v to take the shortest route back after an honest flap ended", d)
			}
		})
	}
}
