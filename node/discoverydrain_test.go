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

// TestDrainingStranded: the policy sees no stranded route on a link being
// drained, and the others' counts unchanged.
func TestDrainingStranded(t *testing.T) {
	d := drains{since: map[string]time.Time{"b": {}}}
	got := d.drainingStranded(map[string]int{"b": 3, "c": 2})
	if got["b"] != 0 || got["c"] != 2 {
		t.Fatalf("got %v, want b 0 and c 2", got)
	}
}
