package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// The node's suspects keep, per destination, the next hops circuits made
// no progress through, a resuming circuit's own last of all, and hold at
// most maxSuspectDests destinations, forgetting the one whose last
// failure is oldest.
func TestHopSuspectsOrderAndBound(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newHopSuspects()
	if got := s.order("d", t0, []string{"x"}); !slices.Equal(got, []string{"x"}) {
		t.Fatalf("no suspects: %v, want the circuit's own [x]", got)
	}
	s.add("d", "b", t0)
	s.add("d", "c", t0.Add(time.Second))
	s.add("e", "f", t0)
	if got := s.order("d", t0.Add(2*time.Second), []string{"b"}); !slices.Equal(got, []string{"c", "b"}) {
		t.Fatalf("suspects b, c and the circuit's own b: %v, want [c b]", got)
	}
	if got := s.order("d", t0.Add(time.Second+resumeAvoidFor+1), nil); len(got) != 0 {
		t.Fatalf("after resumeAvoidFor: %v, want none", got)
	}
	for i := range maxSuspectDests + 10 {
		s.add(fmt.Sprint("n", i), "b", t0.Add(time.Duration(2+i)*time.Millisecond))
	}
	if n := len(s.dest); n > maxSuspectDests {
		t.Fatalf("%d destinations held, bound %d", n, maxSuspectDests)
	}
	now := t0.Add(time.Minute)
	for _, d := range []string{"d", "e", "n0"} {
		if got := s.order(d, now, nil); len(got) != 0 {
			t.Errorf("%s, expired or among the oldest failures, still remembered: %v", d, got)
		}
	}
	if got := s.order(fmt.Sprint("n", maxSuspectDests+9), now, nil); !slices.Equal(got, []string{"b"}) {
		t.Errorf("the newest destination: %v, want [b]", got)
	}
}

// A circuit that made no progress through a's own link to its
// destination d (d itself was slow: starved, paused) says nothing of a
// relay, and a path through another neighbour still ends at d: the next
// dial to d goes over the direct link. Before, d was recorded as its own
// suspect and every dial from a to d went through c for 5 minutes.
func TestDestinationIsNotItsOwnSuspect(t *testing.T) {
	t.Parallel()
	c := newCluster(t, true)
	// Fixed link costs: routing prefers the direct link a-d however the
	// measured costs move on a loaded machine.
	c.tweak = func(cfg *Config) {
		cfg.LinkCosts = map[string]links.Cost{"a": 10, "c": 40, "d": 10}
		if cfg.Name == "c" {
			cfg.LinkCosts = map[string]links.Cost{"a": 40, "d": 40}
		}
	}
	c.build("a-d", "a-c", "c-d")
	c.waitRoute("a", "d", 1)
	c.waitNextHop("a", "d", "d")
	c.waitNextHop("c", "d", "d")
	a := c.nodes["a"]
	waitFor(t, "c to advertise its route to d to a", patience, func() bool {
		return slices.Contains(a.router.advertisers("d"), "c")
	})
	// What a resumable circuit whose path a-d fell silent, or a dial
	// through it that got no answer, records (resume.go, dial.go).
	a.suspects.add("d", "d", time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := a.DialWith(ctx, "d", EchoService, DialOptions{RecordPath: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := fmt.Sprint(conn.Path()); got != "[a d]" {
		t.Fatalf("dial to d after d was slow on a's link to it: path %s, want [a d]", got)
	}
	echoOnce(t, conn, "ping")
}
