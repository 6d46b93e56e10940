package node

import (
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// TestLongLinkStaysWhenNearSetShifts: a router at its target (3: two near
// links and a long one) holds x and b as its near neighbours and the long
// link l, far away; x is the router of the lowest hash and l the next, so
// l is the long link while x is near. Then x's round trip grows and c
// comes near: the near set becomes b and c. The node replaces x by c and
// keeps l; when x comes near again nothing changes. Before, the long link
// was the router of the lowest hash outside the near set: x, once it left
// it, so the node replaced l by c and kept x, which is near, and held no
// long link from then on.
func TestLongLinkStaysWhenNearSetShifts(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	names := []string{"r0", "r1", "r2", "r3", "r4", "r5"}
	cfg := topology.Config{Target: 3, Max: 6, Long: 1, Probes: -1}
	// Which routers rank first by the seeded hash: with no distance
	// known, the near one (Target 2, Long 1) is the lowest hash, the long
	// one the next.
	var x, l string
	{
		var ms []topology.Member
		for _, name := range names {
			ms = append(ms, topology.Member{Name: name, Addr: name})
		}
		p := topology.Decide(topology.Input{Self: "me", Members: ms, Config: topology.Config{Target: 2, Long: 1, Probes: -1, Adds: 10}})
		for i, m := range p.Add {
			switch p.Why[i] {
			case topology.WhyTarget:
				x = m.Name
			case topology.WhyLong:
				l = m.Name
			}
		}
		if x == "" || l == "" {
			t.Fatalf("no near and long link for a router with no links: %+v", p)
		}
	}
	var others []string
	for _, name := range names {
		if name != x && name != l {
			others = append(others, name)
		}
	}
	b, c := others[0], others[1]
	rtt := map[string]time.Duration{x: ms(10), b: ms(12), l: ms(100), c: ms(40), others[2]: ms(60), others[3]: ms(70)}
	type link struct{ long bool }
	linked := map[string]link{x: {}, b: {}, l: {long: true}}
	changes := 0
	settle := func(phase string) {
		t.Helper()
		for range 10 {
			var members []topology.Member
			for _, name := range names {
				members = append(members, topology.Member{Name: name, Addr: name, RTT: rtt[name]})
			}
			var ls []topology.Link
			for _, name := range names {
				if k, ok := linked[name]; ok {
					ls = append(ls, topology.Link{Peer: name, Outbound: true, RTT: rtt[name], Age: time.Hour, Alternates: 1, Long: k.long})
				}
			}
			p := topology.Decide(topology.Input{Self: "me", Members: members, Links: ls, Config: cfg})
			if len(p.Add) == 0 && len(p.Drop) == 0 {
				return
			}
			for i, m := range p.Add {
				linked[m.Name] = link{long: p.Why[i] == topology.WhyLong}
				changes++
			}
			for _, d := range p.Drop {
				delete(linked, d.Peer)
				changes++
			}
		}
		t.Fatalf("%s: the links did not settle in 10 steps: %v", phase, linked)
	}
	held := func() []string {
		var out []string
		for name := range linked {
			out = append(out, name)
		}
		slices.Sort(out)
		return out
	}
	settle("before the shift")
	if changes != 0 {
		t.Fatalf("settled links changed: %v", held())
	}
	rtt[x], rtt[c] = ms(30), ms(5)
	settle("near set b, c")
	if _, ok := linked[l]; !ok {
		t.Errorf("near set %s, %s (x %s left it): links %v after %d changes: want the long link %s kept", b, c, x, held(), changes, l)
	}
	rtt[x] = ms(10)
	settle("near set x, c")
	if _, ok := linked[l]; !ok || changes != 2 {
		t.Errorf("x %s near again: links %v after %d changes: want the long link %s held, 2 changes (x replaced by c)", x, held(), changes, l)
	}
}
