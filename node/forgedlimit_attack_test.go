package node

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackTwoHopForgedSourceExhaustsRelayShare: m, a router two hops
// from r (m–p, h–p, p–r), opens clear circuits by hand through p and r to
// x's sink, naming h as their source, with paths that end with m as the
// relays' check asks and vary the names before m, and holds them. p, an
// honest router, also relays h's own circuits to d through r. Were claims
// counted by the claimed source and the neighbour claiming it, m's
// forgeries and h's circuits would share "h as claimed by p" at r, and
// h's circuits would be refused overloaded there while m holds its own.
// h's circuits should open, as many as the per-source limit.
func TestAttackTwoHopForgedSourceExhaustsRelayShare(t *testing.T) {
	forgedLimitAttack(t, "p", 3, "m-p", "h-p", "p-r", "r-d", "r-x")
}

// TestAttackForgedSiblingSourceExhaustsRelayShare: as
// TestAttackTwoHopForgedSourceExhaustsRelayShare, but h's circuits cross
// q before p (h–q, q–p, m–p): at r, m's forgeries along m, p and h's
// circuits along q, p differ only in their first relay, the claims whose
// total a relay bounds together.
func TestAttackForgedSiblingSourceExhaustsRelayShare(t *testing.T) {
	forgedLimitAttack(t, "p", 3, "m-p", "h-q", "q-p", "p-r", "r-d", "r-x")
}

// TestAttackThreeHopForgedSourceExhaustsRelayShare: as
// TestAttackTwoHopForgedSourceExhaustsRelayShare, with m three hops from
// r (m–q, h–q, q–p, p–r): m's forgeries and h's circuits cross q and p
// alike, and share "h as claimed by p" at r when claims are counted by
// neighbour.
func TestAttackThreeHopForgedSourceExhaustsRelayShare(t *testing.T) {
	forgedLimitAttack(t, "q", 4, "m-q", "h-q", "q-p", "p-r", "r-d", "r-x")
}

// forgedPrefixes are the names m puts before its own in the paths of its
// forged opens, one share of the relays' limits each (at most; some
// coincide at a relay whose claims total they share).
var forgedPrefixes = [][]string{nil, {"a"}, {"b", "a"}, {"c", "b", "a"}, {"h"}, {"q"}, {"p"}}

// forgedLimitAttack builds edges with a per-source limit of 4; m opens
// forged clear circuits by hand on its link to via, naming h as their
// source, to x's sink (x runs E2EOff, hops from m), up to 5 per path
// prefix, and holds those accepted; then h opens 4 circuits to d's echo service and holds them all. It
// fails unless m held at least the per-source limit (the attack ran) and
// h's circuits all carry their bytes.
func forgedLimitAttack(t *testing.T, via string, hops int, edges ...string) {
	const perSource = 4
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.MaxCircuitsPerSource = perSource
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	c.build(edges...)
	c.waitRoute("m", "x", hops)
	c.waitRoute("h", "d", 0)
	startSink(t, c.nodes["x"])
	m := c.nodes["m"]
	l := m.link(via)
	next := c.waitRoute(via, "x", 0).NextHop
	var held []links.Stream
	defer func() {
		for _, s := range held {
			s.Reset(circuit.CloseCancelled)
		}
	}()
	for _, prefix := range forgedPrefixes {
		for range perSource + 1 {
			path := append(append([]string(nil), prefix...), "m")
			o := &circuit.Open{Dest: "x", Source: "h", Service: "sink", Hop: uint8(len(path)), HopLimit: 15, Path: path}
			s, err := openClearByHand(ctxT(t, 10*time.Second), l, o)
			if err != nil {
				if s != nil {
					s.Reset(circuit.CloseCancelled)
				}
				// A path naming via is a loop to via, refused as one
				// (TestAttackLoopedCircuitRefused); one naming via's
				// next hop is refused no route by via, which sends no
				// circuit back into its path
				// (TestRelayPassesOverNextHopsTheCircuitCrossed).
				loop := slices.Contains(prefix, via) && strings.Contains(err.Error(), "circuit loops") ||
					slices.Contains(prefix, next) && strings.Contains(err.Error(), "nodes the circuit crossed")
				if !loop && !strings.Contains(err.Error(), circuit.Overloaded.String()) {
					t.Fatalf("m's forged open along %q: %v, want accepted or overloaded", path, err)
				}
				break
			}
			held = append(held, s)
		}
	}
	t.Logf("m holds %d forged circuits claiming h", len(held))
	if len(held) < perSource {
		t.Fatalf("m holds %d forged circuits, fewer than the per-source limit: the attack did not run", len(held))
	}
	h := c.nodes["h"]
	for i := range perSource {
		conn, err := h.Dial(ctxT(t, patience), "d", EchoService)
		if err != nil {
			t.Fatalf("h's circuit %d to d while m holds %d forged ones: %v", i, len(held), err)
		}
		defer conn.Close()
		msg := []byte("h's own circuit")
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("h's circuit %d: write: %v", i, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatalf("h's circuit %d while m holds %d forged ones: %v", i, len(held), err)
		}
	}
}
