package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestHonestRetryLoopKeepsItsLink: an application on h, an honest
// neighbour of d, dials a service d does not have in a loop (400 dials
// from 2 goroutines, no back-off) while another circuit of h's to d's
// echo stays open. d's budget of refused opens is 4 a second (a bucket
// of 16) and its budget of streams ended without an open 64 (8 a
// second), so the loop goes far beyond both. The opens beyond the first
// budget are refused at once ("overloaded"), as the budget says, but
// they are h's own opens, whole and valid: they must not count as
// streams ended without an open, which close h's link to d and with it
// every circuit of every application on h (and refuse h's links for up
// to 8 s). Before, d closed h's link after about 80 of the dials, and
// the open circuit failed.
func TestHonestRetryLoopKeepsItsLink(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.RefusedOpensPerSource = 4
		cfg.Limits.MaxCircuitsPerSource = 16
		cfg.Limits.StreamAborts = 64
	}
	c.build("h-d")
	c.waitRoute("h", "d", 1)
	c.waitRoute("d", "h", 1)
	h, d := c.nodes["h"], c.nodes["d"]
	link := d.link("h")
	if link == nil {
		t.Fatal("d has no link to h")
	}
	held, err := h.Dial(ctxT(t, patience), "d", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := echoMsg(held, "before"); err != nil {
		t.Fatalf("h's open circuit before the loop: %v", err)
	}

	const dials = 400
	var next, noService, overloaded, other atomic.Int64
	var mu sync.Mutex
	var others []error
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for next.Add(1) <= dials {
				_, err := h.Dial(ctxT(t, patience), "d", "nope")
				switch {
				case errors.Is(err, circuit.ErrNoService):
					noService.Add(1)
				case errors.Is(err, circuit.ErrOverloaded):
					overloaded.Add(1)
				default:
					other.Add(1)
					mu.Lock()
					others = append(others, err)
					mu.Unlock()
				}
			}
		})
	}
	waitGroup(t, &wg, "the dial loop")
	st := d.RefusedOpenStats()
	t.Logf("h's %d dials: %d refused no such service, %d overloaded, %d otherwise; d charged %d, refused %d at once; d's link to h the same: %v",
		dials, noService.Load(), overloaded.Load(), other.Load(), st.Charged, st.Beyond, d.link("h") == link)
	for i, err := range others {
		if i < 3 {
			t.Logf("dial failed otherwise: %v", err)
		}
	}
	if overloaded.Load() == 0 {
		t.Fatal("no dial was refused at once: the loop did not go beyond d's budget")
	}
	if other.Load() > 0 {
		t.Errorf("%d of h's dials failed otherwise than refused (first: %v), want none", other.Load(), others[0])
	}
	if d.link("h") != link {
		t.Errorf("d closed or replaced its link to h, an honest neighbour dialling a missing service in a loop")
	}
	if err := echoMsg(held, "after"); err != nil {
		t.Errorf("h's open circuit to d's echo after the loop: %v, want it carrying its bytes", err)
	}
}
