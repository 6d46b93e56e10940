package node

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// nextHopLinkLimit is the relay r's Limits.MaxCircuitsPerLink (and so the
// QUIC stream limit of its links) in the next-hop attack tests: the
// circuits r may carry on its link to d.
const nextHopLinkLimit = 16

// heldOnLink is how many circuits r counts on its link to peer.
func heldOnLink(r *Node, peer string) int {
	r.limits.mu.Lock()
	defer r.limits.mu.Unlock()
	return r.limits.perLink[peer]
}

// TestAttackOneRouterFillsNextHopLink: m, a router with a valid
// certificate and a neighbour of the relay r, opens clear circuits by
// hand through r and d to a sink x of its own behind d (E2E off), each
// claiming to relay it for a made-up source, so that no per-source limit
// holds them, and holds them. Every circuit r relays to d counts against
// r's limit of circuits on its link to d (Limits.MaxCircuitsPerLink),
// which all sources share: before, m's circuits took it whole and r
// refused the circuit h, an honest neighbour, opened through it to d
// (overloaded, "the per-link limit"). Now the last sixteenth of a link's
// limit (its reserve; one circuit here) goes only to circuits coming in
// on a link fewer than a sixteenth of that reserve (at least one) of
// whose circuits go out on it: m holds 15, and h's circuit carries its
// bytes.
func TestAttackOneRouterFillsNextHopLink(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "r" {
			cfg.Limits.MaxCircuitsPerLink = nextHopLinkLimit
		}
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	c.build("h-r", "m-r", "r-d", "d-x")
	c.waitRoute("h", "d", 2)
	c.waitRoute("m", "x", 3)
	startSink(t, c.nodes["x"])
	var held []links.Stream
	defer func() {
		for _, s := range held {
			s.Reset(circuit.CloseCancelled)
		}
	}()
	l := c.nodes["m"].link("r")
	for j := range nextHopLinkLimit { // m's link's stream limit at r too: one more would wait for credit
		o := &circuit.Open{Dest: "x", Source: fmt.Sprintf("s%d", j), Service: "sink", Hop: 1, HopLimit: 15, Path: []string{"m"}}
		s, err := openClearByHand(ctxT(t, patience), l, o)
		if err != nil {
			if s != nil {
				s.Reset(circuit.CloseCancelled)
			}
			if !strings.Contains(err.Error(), circuit.Overloaded.String()) {
				t.Fatalf("m's open %d: %v, want accepted or overloaded", j, err)
			}
			break
		}
		held = append(held, s)
	}
	wantHonestPastHeldLink(t, c, "m", len(held))
}

// TestAttackFourMembersFillNextHopLink: four members with valid
// certificates (m1 to m4), neighbours of the relay r, each open as many
// circuits through r to a service of d as r's per-source limit lets them
// (a quarter of r's limit on its link to d), authenticated as
// themselves, and hold them. Circuits ending at d count against no
// limit of d's links but against r's limit on its link to d, shared by
// every source r carries: before, the four took it whole and r refused
// h's circuit to d (overloaded, "the per-link limit"). Now m1 to m3 get
// 4 each and m4 3, all outside the reserve (the last sixteenth of the
// limit, one circuit here), which m4, with circuits of its own going out
// on the link, may not take: h's circuit takes it and carries its bytes.
func TestAttackFourMembersFillNextHopLink(t *testing.T) {
	const perSource = nextHopLinkLimit / 4
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "r" {
			cfg.Limits.MaxCircuitsPerLink = nextHopLinkLimit
			cfg.Limits.MaxCircuitsPerSource = perSource
		}
	}
	c.build("h-r", "m1-r", "m2-r", "m3-r", "m4-r", "r-d")
	c.waitRoute("h", "d", 2)
	startSink(t, c.nodes["d"])
	var held []net.Conn
	defer func() {
		for _, cn := range held {
			cn.Close()
		}
	}()
	for i := 1; i <= 4; i++ {
		m := fmt.Sprintf("m%d", i)
		c.waitRoute(m, "d", 2)
		for range perSource {
			cn, err := c.nodes[m].Dial(ctxT(t, patience), "d", "sink")
			if err != nil {
				if !errors.Is(err, circuit.ErrOverloaded) {
					t.Fatalf("%s's circuit: %v, want accepted or overloaded", m, err)
				}
				break
			}
			held = append(held, cn)
		}
	}
	wantHonestPastHeldLink(t, c, "m1 to m4", len(held))
}

// TestAttackFilledNextHopPassedOver: r reaches d through two next hops, a
// and b. m, a member and a neighbour of r, opens circuits through r to a
// service of r's first next hop toward d until r refuses one, filling r's
// link to it up to its reserve, and holds them. h, an honest neighbour of
// r, then opens circuits to d: its first may take that link's reserve,
// the next finds the link full for it. Before, r refused such a circuit
// (overloaded) although its other next hop had room; now it passes the
// full next hop over and the circuit goes through the other.
//
// Link costs are pinned: measured costs move on a loaded machine, and a
// rise of one path's cost past r's feasibility distance for d left r
// with one next hop while h dialled (a CI run failed so: "r's next hops
// [b]"), which is routing's doing, not the attack's.
func TestAttackFilledNextHopPassedOver(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.LinkCosts = map[string]links.Cost{"h": 100, "m": 100, "r": 100, "a": 100, "b": 100, "d": 100}
		if cfg.Name == "r" {
			cfg.Limits.MaxCircuitsPerLink = nextHopLinkLimit
		}
	}
	c.build("h-r", "m-r", "r-a", "r-b", "a-d", "b-d")
	c.waitRoute("h", "d", 3)
	r := c.nodes["r"]
	var hops []string
	waitFor(t, "r to have two next hops to d", patience, func() bool {
		hops = r.router.nextHops("d")
		return len(hops) >= 2
	})
	full := hops[0]
	for _, n := range []string{"a", "b", "d"} {
		startSink(t, c.nodes[n])
	}
	c.waitRoute("m", full, 2)
	var held []net.Conn
	defer func() {
		for _, cn := range held {
			cn.Close()
		}
	}()
	for range nextHopLinkLimit { // m's link's stream limit at r too
		cn, err := c.nodes["m"].Dial(ctxT(t, patience), full, "sink")
		if err != nil {
			if !errors.Is(err, circuit.ErrOverloaded) {
				t.Fatalf("m's circuit to %s: %v, want accepted or overloaded", full, err)
			}
			break
		}
		held = append(held, cn)
	}
	if want := nextHopLinkLimit - nextHopLinkLimit/16; heldOnLink(r, full) < want {
		t.Fatalf("r counts %d circuits on its link to %s, want at least %d: the attack did not run", heldOnLink(r, full), full, want)
	}
	const honest = 4
	for j := range honest {
		cn, err := c.nodes["h"].Dial(ctxT(t, patience), "d", "sink")
		t.Logf("h's circuit %d to d: r's next hops %v, %d circuits on its link to %s: %v", j, r.router.nextHops("d"), heldOnLink(r, full), full, err)
		if err != nil {
			t.Fatalf("h's circuit %d to d, while m fills r's link to %s, one of r's two next hops: %v", j, full, err)
		}
		held = append(held, cn)
	}
}

// wantHonestPastHeldLink checks that h's circuit through r to d carries
// its bytes while who hold held circuits on r's link to d, and that the
// attack ran: who hold at least three quarters of that link's limit.
func wantHonestPastHeldLink(t *testing.T, c *cluster, who string, held int) {
	t.Helper()
	onLink := heldOnLink(c.nodes["r"], "d")
	err := roundTrip(t, c.nodes["h"], "d", EchoService, []byte("h"))
	t.Logf("%s: %d circuits held through r; r counts %d on its link to d (limit %d); h's circuit: %v",
		who, held, onLink, nextHopLinkLimit, err)
	if want := nextHopLinkLimit - nextHopLinkLimit/4; held < want {
		t.Fatalf("%s hold %d circuits through r, want at least %d: the attack did not run", who, held, want)
	}
	if err != nil {
		t.Fatalf("h's circuit through r to d while %s hold r's link to d: %v", who, err)
	}
}
