package node

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackForgedSourceExhaustsRelayShare: m, a router with a valid
// certificate linked to r, opens circuits through r to d claiming to
// relay them for x (hop 1), each with a full-handshake first message that
// d answers and then waits on for the source's identity (up to
// HeaderTimeout). r cannot tell them from x's: before, r counted them
// against x's per-source limit, and x's own circuits through r were
// refused overloaded while m held them. Now r counts a circuit that a
// neighbour claims to relay against (source, neighbour): m exhausts only
// its own claims for x, and x's circuits carry their bytes.
func TestAttackForgedSourceExhaustsRelayShare(t *testing.T) {
	const perSource = 4
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.MaxCircuitsPerSource = perSource
		cfg.Limits.HeaderTimeout = time.Minute // d holds the forged opens while the test runs
	}
	c.build("x-r", "r-d", "m-r")
	c.waitRoute("x", "d", 2)
	c.waitRoute("m", "d", 2)
	m := c.nodes["m"]
	l := m.link("r")
	var held []links.Stream
	defer func() {
		for _, s := range held {
			s.Reset(circuit.CloseCancelled)
		}
	}()
	for i := 0; i < perSource+1; i++ {
		o := &circuit.Open{Dest: "d", Source: "x", Service: EchoService, Hop: 1, HopLimit: 15, Path: []string{"m"}}
		s, code, err := openByHand(ctxT(t, 10*time.Second), m, l, o, nil)
		if s != nil {
			held = append(held, s)
		}
		if err != nil {
			t.Fatalf("m's forged open %d: %v", i, err)
		}
		want := circuit.Accepted // by d, which then waits for x's identity
		if i == perSource {
			want = circuit.Overloaded // by r: m's claims for x are at the limit
		}
		if code != want {
			t.Fatalf("m's forged open %d: %v, want %v", i, code, want)
		}
	}
	for i := 0; i < perSource; i++ {
		if err := roundTrip(t, c.nodes["x"], "d", EchoService, []byte("x's own circuit")); err != nil {
			t.Fatalf("x's circuit %d through r while m holds forged ones: %v", i, err)
		}
	}
}
