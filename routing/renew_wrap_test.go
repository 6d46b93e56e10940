package routing

import (
	"testing"
	"time"
)

// A neighbour m keeps its route to b alive with updates at seqnos no
// attestation covers while b's seqno moves on (c brings each new one,
// checked). Once b's checked seqno is more than half the 16-bit circle
// past m's route, that route's seqno is not covered any more: m could
// not send an update at it, so renewing it must stop and the route must
// expire; otherwise a seqno that now compares newer than every checked
// one stays in the table for as long as m likes.
func TestRenewalStopsWhenRouteSeqnoNoLongerCovered(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	e.LinkUp(ct0, "m", 10, false)
	at := ct0
	mustReceive(t, e, at, "c", encodeMessage([]entry{att("b", 5, attOf("b", 5)), upd("b", 5, 30)}))
	mustReceive(t, e, at, "m", encodeMessage([]entry{upd("b", 5, 20)}))
	e.Tick(at)
	expiry := e.Config().RouteExpiry
	// b's seqno moves on: 5 -> 20000 -> 38000 (5 now compares newer than 38000).
	for _, s := range []uint16{20000, 38000} {
		at = at.Add(time.Second)
		mustReceive(t, e, at, "c", encodeMessage([]entry{att("b", s, attOf("b", s)), upd("b", s, 30)}))
		mustReceive(t, e, at, "m", encodeMessage([]entry{upd("b", s+1, 1)}))
		e.Tick(at)
		r, _ := e.Lookup("b")
		t.Logf("attested %d: route %+v, next hops %v", s, r, e.NextHops("b"))
	}
	if s, _, _ := e.Attestation("b"); !seqnoLess(s, 5) {
		t.Fatalf("setup: attestation of b at %d, want 5 to compare newer", s)
	}
	for i := range 6 {
		at = at.Add(expiry / 2)
		mustReceive(t, e, at, "c", encodeMessage([]entry{upd("b", 38000, 30+30*Metric(i%2))}))
		mustReceive(t, e, at, "m", encodeMessage([]entry{upd("b", 38001, 1)}))
		e.Tick(at)
		e.Ready()
		r, _ := e.Lookup("b")
		t.Logf("%v: route %+v", at.Sub(ct0), r)
	}
	ob := e.origins.get("b")
	t.Logf("fd %v %d %d att %d", ob.fdValid, ob.fdSeqno, ob.fdMetric, ob.attSeq)
	r, ok := e.Lookup("b")
	t.Logf("after %v: route %+v (%v), next hops %v", at.Sub(ct0), r, ok, e.NextHops("b"))
	for _, rt := range e.routes(e.origins.get("b")) {
		if e.nbOf(&rt).name == "m" {
			t.Fatalf("after %v: m's route to b at seqno %d (metric %d) is still held; checked seqno is 38000, which does not cover %d",
				at.Sub(ct0), rt.seqno, rt.metric, rt.seqno)
		}
	}
}

// m's route to b at seqno 5 is held, not renewed, while c brings b's
// checked seqnos 20000 then 38000 with routes. Once 38000 is checked, 5
// compares newer than it: unless the route at 5 goes, it stays selected
// until it expires, and the route at 38000 that c offers, checked, is
// unfeasible against the feasibility distance at 5. b must be reached
// through c as soon as 38000 is checked.
func TestCheckedSeqnoPastHeldRouteMakesItsRoutesFeasible(t *testing.T) {
	e := certEngine(t, &fakeCertifier{})
	e.LinkUp(ct0, "c", 10, false)
	e.LinkUp(ct0, "m", 10, false)
	at := ct0
	mustReceive(t, e, at, "c", encodeMessage([]entry{att("b", 5, attOf("b", 5)), upd("b", 5, 30)}))
	mustReceive(t, e, at, "m", encodeMessage([]entry{upd("b", 5, 1)}))
	e.Tick(at)
	e.Ready()
	if nh, _ := e.NextHop("b"); nh != "m" {
		t.Fatalf("setup: next hop to b %q, want m", nh)
	}
	for _, s := range []uint16{20000, 38000} {
		at = at.Add(time.Second)
		mustReceive(t, e, at, "c", encodeMessage([]entry{att("b", s, attOf("b", s)), upd("b", s, 30)}))
		e.Tick(at)
		for _, ev := range e.Ready().Events {
			if ev.Dest == "b" && ev.Kind == PeerDown {
				t.Errorf("attested %d: b reported down, though c's message brings a route at it", s)
			}
		}
	}
	if at.Sub(ct0) >= e.Config().RouteExpiry {
		t.Fatalf("setup: m's route expired")
	}
	r, ok := e.Lookup("b")
	if nh, _ := e.NextHop("b"); !ok || !r.Reachable || nh != "c" {
		t.Fatalf("b checked at 38000 and offered by c: route %+v (known %v), next hop %q; want reachable via c", r, ok, nh)
	}
}
