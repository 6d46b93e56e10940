package node

import (
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// fakeDrainRouter records drains and reports left destinations per peer.
type fakeDrainRouter struct {
	left     map[string]int
	draining map[string]bool
}

func (f *fakeDrainRouter) drain(peer string) int { f.draining[peer] = true; return f.left[peer] }
func (f *fakeDrainRouter) undrain(peer string)   { delete(f.draining, peer) }

// TestDrainDrops: a replaced link is drained before it closes; it closes
// once nothing routes through it and drainMin passed, or at drainMax if no
// route depends on it alone; otherwise its drain is cancelled and it is
// kept (not drained again for drainHold); a drain the policy no longer
// asks for is cancelled, and not started again for drainHold either;
// other drops close at once.
func TestDrainDrops(t *testing.T) {
	replace := func(peer string) topology.Drop { return topology.Drop{Peer: peer, Why: topology.WhyReplace} }
	t0 := time.Unix(1_700_000_000, 0)
	type step struct {
		at       time.Duration
		drops    []topology.Drop
		left     int // destinations routing still has through "b"
		stranded int // Link.Stranded of "b"
		closed   []string
		draining bool // "b" drained after the step
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"closes once drained", []step{
			{at: 0, drops: []topology.Drop{replace("b")}, left: 3, draining: true},
			{at: time.Second, drops: []topology.Drop{replace("b")}, left: 0, draining: true}, // before drainMin
			{at: drainMin, drops: []topology.Drop{replace("b")}, left: 1, stranded: 1, draining: true},
			{at: drainMin + time.Second, drops: []topology.Drop{replace("b")}, left: 0, closed: []string{"b"}, draining: true},
			{at: drainMin + 2*time.Second, draining: false}, // gone: no drain left
		}},
		{"closes at drainMax when nothing depends on it alone", []step{
			{at: 0, drops: []topology.Drop{replace("b")}, left: 3, draining: true},
			{at: drainMax, drops: []topology.Drop{replace("b")}, left: 2, closed: []string{"b"}, draining: true},
		}},
		{"kept and held when a route depends on it at drainMax", []step{
			{at: 0, drops: []topology.Drop{replace("b")}, left: 3, stranded: 2, draining: true},
			{at: drainMax, drops: []topology.Drop{replace("b")}, left: 2, stranded: 2, draining: false},
			{at: drainMax + time.Second, drops: []topology.Drop{replace("b")}, left: 2, stranded: 2, draining: false},
			{at: drainMax + drainHold, drops: []topology.Drop{replace("b")}, left: 2, stranded: 2, draining: true},
		}},
		{"cancelled when the policy keeps the link", []step{
			{at: 0, drops: []topology.Drop{replace("b")}, left: 3, draining: true},
			{at: time.Second, left: 3, draining: false},
			{at: drainMax, left: 0, draining: false},
		}},
		{"held after a cancel", []step{
			{at: 0, drops: []topology.Drop{replace("b")}, left: 3, draining: true},
			{at: time.Second, left: 3, draining: false},
			{at: 2 * time.Second, drops: []topology.Drop{replace("b")}, left: 3, draining: false},
			{at: time.Second + drainHold, drops: []topology.Drop{replace("b")}, left: 3, draining: true},
		}},
		{"other drops close at once", []step{
			{at: 0, drops: []topology.Drop{{Peer: "b", Why: topology.WhyMax}}, left: 3, closed: []string{"b"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d drains
			f := &fakeDrainRouter{left: map[string]int{}, draining: map[string]bool{}}
			linked := map[string]bool{"b": true}
			for i, s := range tc.steps {
				f.left["b"] = s.left
				var closed []string
				d.drainDrops(f, t0.Add(s.at), s.drops, map[string]int{"b": s.stranded}, func(p string) bool { return linked[p] }, func(dr topology.Drop) {
					closed = append(closed, dr.Peer)
					linked[dr.Peer] = false
				})
				if !slices.Equal(closed, s.closed) {
					t.Fatalf("step %d: closed %v, want %v", i, closed, s.closed)
				}
				if f.draining["b"] != s.draining && linked["b"] {
					t.Fatalf("step %d: draining %v, want %v", i, f.draining["b"], s.draining)
				}
				if len(d.since) > 1 || len(d.held) > 1 {
					t.Fatalf("step %d: %d drains and %d held for one link", i, len(d.since), len(d.held))
				}
			}
		})
	}
}

// TestPolicyStranded: the policy sees the stranded count of a link only
// while the link is held after a drain that could not end, and at least 1
// then (f: nothing depends on it alone any more, but its hold has not run
// out); a link being drained, one not drained yet and one whose hold ran
// out count 0.
func TestPolicyStranded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	d := drains{since: map[string]time.Time{"b": now}, held: map[string]time.Time{"c": now.Add(time.Second), "e": now, "f": now.Add(time.Second)}}
	got := d.policyStranded(map[string]int{"b": 3, "c": 2, "d": 1, "e": 4}, now)
	if got["b"] != 0 || got["c"] != 2 || got["d"] != 0 || got["e"] != 0 || got["f"] != 1 {
		t.Fatalf("got %v, want c 2, f 1 and b, d, e 0", got)
	}
}

// TestStrandedLinkIsDrained: a node above its target has a far outgoing
// link whose peer (and a route behind it) has no feasible alternate yet,
// and a clearly closer neighbour linked. The policy's step drains the far
// link at once (the drain asks for the seqnos that let the routes move)
// and closes it once nothing routes through it. Before, the policy kept
// such a link until a newer seqno came for another reason, at most once a
// minute for a seqno alone (routing's answerAllGap): at 100 nodes the
// replacements of the joins came a minute later, together.
func TestStrandedLinkIsDrained(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cfg := topology.Config{Target: 3, Max: 5, Long: -1}
	members := []topology.Member{{Name: "r0"}, {Name: "r1"}, {Name: "r2"}, {Name: "r9"}}
	links := func(stranded map[string]int) []topology.Link {
		var ls []topology.Link
		for i, peer := range []string{"r0", "r1", "r2", "r9"} {
			rtt := ms(10 * (i + 1))
			if peer == "r9" {
				rtt = ms(100)
			}
			ls = append(ls, topology.Link{Peer: peer, Outbound: true, RTT: rtt, Age: time.Hour, Alternates: 1, Stranded: stranded[peer]})
		}
		return ls
	}
	t0 := time.Unix(1_700_000_000, 0)
	var d drains
	f := &fakeDrainRouter{left: map[string]int{"r9": 2}, draining: map[string]bool{}}
	linked := map[string]bool{"r0": true, "r1": true, "r2": true, "r9": true}
	strand := map[string]int{"r9": 2} // r9 and a destination behind it
	step := func(at time.Duration) []string {
		now := t0.Add(at)
		plan := topology.Decide(topology.Input{Self: "me", Members: members, Links: links(d.policyStranded(strand, now)), Config: cfg})
		var closed []string
		d.drainDrops(f, now, plan.Drop, strand, func(p string) bool { return linked[p] }, func(dr topology.Drop) {
			closed = append(closed, dr.Peer)
			linked[dr.Peer] = false
		})
		return closed
	}
	if closed := step(0); len(closed) > 0 || !f.draining["r9"] {
		t.Fatalf("first step: closed %v, draining r9 %v: want the far link drained, not closed", closed, f.draining["r9"])
	}
	// The newer seqnos came: the routes moved, r9's link routes nothing.
	f.left["r9"], strand["r9"] = 0, 0
	if closed := step(drainMin); !slices.Equal(closed, []string{"r9"}) {
		t.Fatalf("at drainMin with nothing routed through it: closed %v, want r9", closed)
	}
}

// TestReplacementDrainKeepsItsLink: while the far link r8 is drained for a
// replacement, the farther r9 comes of age (or its round trip overtakes
// r8's): the policy goes on replacing r8, which closes once drained, and
// drains r9 next. Before, the policy dropped the farthest replaceable link
// at every step, so r8's drain stopped and r8 was kept for drainHold, to
// be replaced half a minute later: at 100 nodes such replacements still
// came a minute after the joins.
func TestReplacementDrainKeepsItsLink(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name  string
		r9    func(at time.Duration) (rtt, age time.Duration)
		r8RTT time.Duration
	}{
		{name: "a farther link comes of age", r8RTT: ms(90), r9: func(at time.Duration) (time.Duration, time.Duration) {
			if at == 0 {
				return ms(100), time.Second // younger than MinAge
			}
			return ms(100), time.Hour
		}},
		{name: "round trips reorder", r8RTT: ms(90), r9: func(at time.Duration) (time.Duration, time.Duration) {
			if at == 0 {
				return ms(80), time.Hour
			}
			return ms(100), time.Hour
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := topology.Config{Target: 3, Max: 6, Long: -1, MinAge: time.Minute}
			members := []topology.Member{{Name: "r0"}, {Name: "r1"}, {Name: "r2"}, {Name: "r8"}, {Name: "r9"}}
			t0 := time.Unix(1_700_000_000, 0)
			var d drains
			f := &fakeDrainRouter{left: map[string]int{"r8": 1, "r9": 1}, draining: map[string]bool{}}
			linked := map[string]bool{"r0": true, "r1": true, "r2": true, "r8": true, "r9": true}
			strand := map[string]int{}
			step := func(at time.Duration) []string {
				now := t0.Add(at)
				var ls []topology.Link
				for i, peer := range []string{"r0", "r1", "r2"} {
					ls = append(ls, topology.Link{Peer: peer, Outbound: true, RTT: ms(10 * (i + 1)), Age: time.Hour, Alternates: 1})
				}
				ls = append(ls, topology.Link{Peer: "r8", Outbound: true, RTT: tc.r8RTT, Age: time.Hour, Alternates: 1})
				rtt9, age9 := tc.r9(at)
				ls = append(ls, topology.Link{Peer: "r9", Outbound: true, RTT: rtt9, Age: age9, Alternates: 1})
				policy := d.policyStranded(strand, now)
				for i := range ls {
					ls[i].Stranded, ls[i].Replacing = policy[ls[i].Peer], d.draining(ls[i].Peer)
				}
				var live []topology.Link
				for _, l := range ls {
					if linked[l.Peer] {
						live = append(live, l)
					}
				}
				plan := topology.Decide(topology.Input{Self: "me", Members: members, Links: live, Config: cfg})
				var closed []string
				d.drainDrops(f, now, plan.Drop, strand, func(p string) bool { return linked[p] }, func(dr topology.Drop) {
					closed = append(closed, dr.Peer)
					linked[dr.Peer] = false
				})
				return closed
			}
			if closed := step(0); len(closed) > 0 || !f.draining["r8"] || f.draining["r9"] {
				t.Fatalf("first step: closed %v, draining %v: want r8 drained", closed, f.draining)
			}
			f.left["r8"] = 0 // r8's routes moved
			if closed := step(time.Second); len(closed) > 0 || !f.draining["r8"] || f.draining["r9"] {
				t.Fatalf("r9 replaceable too: closed %v, draining %v: want r8 still drained, r9 not yet", closed, f.draining)
			}
			if closed := step(drainMin); !slices.Equal(closed, []string{"r8"}) {
				t.Fatalf("at drainMin: closed %v, want r8", closed)
			}
			if closed := step(drainMin + time.Second); len(closed) > 0 || !f.draining["r9"] {
				t.Fatalf("after r8: closed %v, draining %v: want r9 drained next", closed, f.draining)
			}
		})
	}
}
