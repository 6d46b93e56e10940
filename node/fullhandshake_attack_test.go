package node

import (
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestHeldFullHandshakesCounted: m opens circuits to d with a
// full-handshake first message and never sends the third. d answers each
// and waits for the third message, and now counts each meanwhile against
// its limits: m, proven by the link (hop 0), holds at most its
// per-source share. Before, none was counted until the third message,
// and m held 100 with MaxCircuits 64.
func TestHeldFullHandshakesCounted(t *testing.T) {
	const perSource, opens = 16, 100
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.MaxCircuits = 64
		cfg.Limits.MaxCircuitsPerSource = perSource
		cfg.Limits.HeaderTimeout = time.Minute // d holds the opens while the test runs
		cfg.Limits.FullHandshakes = 1 << 20    // the budget is not what this test bounds
	}
	c.build("m-d", "h-d")
	m, d := c.nodes["m"], c.nodes["d"]
	l := m.link("d")
	var held []links.Stream
	defer func() {
		for _, s := range held {
			s.Reset(circuit.CloseCancelled)
		}
	}()
	accepted, overloaded := fullOpens(t, m, l, opens, func(s links.Stream) { held = append(held, s) })
	d.limits.mu.Lock()
	total := d.limits.total
	d.limits.mu.Unlock()
	t.Logf("d accepted %d of m's %d full handshakes awaiting their third message, refused %d overloaded; counts %d circuits", accepted, opens, overloaded, total)
	if accepted > perSource || accepted+overloaded != opens {
		t.Fatalf("d accepted %d and refused %d overloaded of %d full handshakes held by one source, want at most %d accepted (its share) and the rest refused", accepted, overloaded, opens, perSource)
	}
	if err := roundTrip(t, c.nodes["h"], "d", EchoService, []byte("h")); err != nil {
		t.Fatalf("h's circuit to d while m holds its share: %v", err)
	}
}

// TestFullHandshakeBudget: m sends full-handshake first messages to d
// one after the other, each costing d three X25519 operations and m's
// link none of its share of anything else. d answers at most its
// per-link budget (2 a second here, burst 2) and refuses the rest
// overloaded before any cryptography; h, on another link, still opens.
func TestFullHandshakeBudget(t *testing.T) {
	const rate, opens = 2, 40
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.FullHandshakesPerLink = rate }
	c.build("m-d", "h-d")
	m := c.nodes["m"]
	l := m.link("d")
	start := time.Now()
	accepted, overloaded := fullOpens(t, m, l, opens, func(s links.Stream) { s.Reset(circuit.CloseCancelled) })
	elapsed := time.Since(start)
	// The budget is rate a second after a burst of rate, counted over
	// the time the opens took (whatever the machine's speed).
	bound := rate + int(float64(rate)*elapsed.Seconds()) + 1
	t.Logf("d answered %d of %d full handshakes from one link in %v, refused %d overloaded (budget bound %d)", accepted, opens, elapsed, overloaded, bound)
	if accepted > bound || accepted < rate || accepted+overloaded != opens {
		t.Fatalf("d answered %d and refused %d overloaded of %d full handshakes in %v, want the burst of %d and at most %d answered and the rest refused", accepted, overloaded, opens, elapsed, rate, bound)
	}
	if err := roundTrip(t, c.nodes["h"], "d", EchoService, []byte("h")); err != nil {
		t.Fatalf("h's circuit to d over another link: %v", err)
	}
}

// fullOpens sends n full-handshake opens from m to d on l, one after the
// other, hands each stream opened to keep, and counts the answers.
func fullOpens(t *testing.T, m *Node, l links.Link, n int, keep func(links.Stream)) (accepted, overloaded int) {
	t.Helper()
	for i := 0; i < n; i++ {
		o := &circuit.Open{Dest: "d", Source: "m", Service: EchoService, HopLimit: 15}
		s, code, err := openByHand(ctxT(t, 10*time.Second), m, l, o, nil)
		if s != nil {
			keep(s)
		}
		if err != nil {
			t.Fatalf("m's open %d: %v", i, err)
		}
		switch code {
		case circuit.Accepted:
			accepted++
		case circuit.Overloaded:
			overloaded++
		}
	}
	return accepted, overloaded
}
