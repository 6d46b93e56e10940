package node

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackFourRoutersFillRelayCircuits: four routers with valid
// certificates (m1 to m4), neighbours of the relay r, each open clear
// circuits through r to a sink of their own (x1 to x4, E2E off) by hand,
// each claiming to relay it for a made-up source, so that the per-source
// limits do not hold them, and hold them. Each link is held to its share
// of r's circuits (Limits.MaxCircuitsPerLink, a quarter of
// Limits.MaxCircuits), but four shares are the node's limit: before, r
// refused every circuit h, an honest neighbour, opened through it to d
// (overloaded, the node limit). Now the last quarter of the limit goes
// only to circuits coming in on a link on which fewer than a sixteenth
// of its share came in, and h's circuit carries its bytes.
func TestAttackFourRoutersFillRelayCircuits(t *testing.T) {
	const total, perLink = 64, 16
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.MaxCircuits = total
		cfg.Limits.MaxCircuitsPerLink = perLink
		if strings.HasPrefix(cfg.Name, "x") {
			cfg.E2E = E2EOff
		}
	}
	c.build("h-r", "r-d", "m1-r", "m2-r", "m3-r", "m4-r", "r-x1", "r-x2", "r-x3", "r-x4")
	c.waitRoute("h", "d", 2)
	var held []links.Stream
	defer func() {
		for _, s := range held {
			s.Reset(circuit.CloseCancelled)
		}
	}()
	for i := 1; i <= 4; i++ {
		m, x := fmt.Sprintf("m%d", i), fmt.Sprintf("x%d", i)
		c.waitRoute(m, x, 2)
		startSink(t, c.nodes[x])
		l := c.nodes[m].link("r")
		for j := range perLink { // the link's stream limit too: a 17th would wait for credit
			o := &circuit.Open{Dest: x, Source: fmt.Sprintf("s%d-%d", i, j), Service: "sink", Hop: 1, HopLimit: 15, Path: []string{m}}
			s, err := openClearByHand(ctxT(t, 10*time.Second), l, o)
			if err != nil {
				if s != nil {
					s.Reset(circuit.CloseCancelled)
				}
				if !strings.Contains(err.Error(), circuit.Overloaded.String()) {
					t.Fatalf("%s's open %d: %v, want accepted or overloaded", m, j, err)
				}
				break
			}
			held = append(held, s)
		}
	}
	r := c.nodes["r"]
	r.limits.mu.Lock()
	open := r.limits.total
	r.limits.mu.Unlock()
	err := roundTrip(t, c.nodes["h"], "d", EchoService, []byte("h"))
	t.Logf("m1 to m4 hold %d circuits through r (limit %d, %d a link); r counts %d; h's circuit: %v", len(held), total, perLink, open, err)
	if len(held) < total-total/4 {
		t.Fatalf("the routers hold %d circuits through r, want at least %d: the attack did not run", len(held), total-total/4)
	}
	if err != nil {
		t.Fatalf("h's circuit through r while four routers hold r's circuits: %v", err)
	}
}
