package routing

import (
	"testing"
	"time"
)

// TestAttackHeldSeqnoWrapsForTheOthers: m, a neighbour of h with a valid
// certificate, asks h once a second, ten times, for a seqno of origin o0
// 4096 ahead of the one h holds. Each request raises o0's seqno; h sends
// each new seqno to m at once and holds it back from v, which did not
// ask. When a raise could move o0 by 4096, ten of them carried it past
// half the 16-bit circle: the next route h sent v (after a cost changed,
// or m asked again once answerAllGap was over) read as older than the one
// v held, and v, one hop from an origin that never went down, had no
// route to it for 14.2 s. v keeps its route throughout.
func TestAttackHeldSeqnoWrapsForTheOthers(t *testing.T) {
	s := newStar(t, []string{"o0", "w"})
	v, w, h, o := s.engines["v"], s.engines["w"], s.engines["h"], s.engines["o0"]
	v.LinkUp(s.now, "w", 10, false) // v advertises o0 on to w
	w.LinkUp(s.now, "v", 10, false)
	s.run(10 * time.Second)
	if _, ok := v.Lookup("o0"); !ok {
		t.Fatal("before the attack: v has no route to o0")
	}
	first := o.seqno
	var down time.Duration
	watch := func(d time.Duration) {
		for end := s.now.Add(d); s.now.Before(end); {
			s.run(5 * time.Millisecond)
			if _, ok := v.Lookup("o0"); !ok {
				down += 5 * time.Millisecond
			}
		}
	}
	ask := func() {
		r, _ := h.Lookup("o0")
		mustReceive(t, h, s.now, "m", encodeMessage([]entry{{kind: kindRequest, origin: "o0", seqno: r.Seqno + 4096, hopcnt: 127}}))
	}
	for range 10 {
		ask()
		watch(time.Second)
	}
	t.Logf("o0's seqno moved %d in 10 s of requests", o.seqno-first)
	watch(30 * time.Second)
	// The route h sends every neighbour moves: a cost changes.
	h.LinkCost(s.now, "o0", 15)
	o.LinkCost(s.now, "h", 15)
	watch(30 * time.Second)
	ask() // once the gap is over
	watch(30 * time.Second)
	rv, ok := v.Lookup("o0")
	rh, _ := h.Lookup("o0")
	t.Logf("v's route to o0: seqno %d (h's %d, o0's %d), reachable %v; v had none for %v", rv.Seqno, rh.Seqno, o.seqno, ok, down)
	if down > 0 || !ok {
		t.Fatalf("v, one hop from o0 through h, had no route to it for %v of the attack", down)
	}
}

// TestHeldSeqnoStaysWithinHoldSpan: origin o0 jumps 5,000 past its seqno
// at once (as it does past an attestation of its own from before a
// restart), which h learns without sending it on (a new seqno alone).
// m then asks h for o0 at the seqno h holds, within the 64 s after the
// last answer went to all: h's reply to m is a new seqno alone, which h
// would hold back from v, but it is holdSpan or more ahead of what v
// holds, so v gets it too. Each hold would otherwise let what v holds
// fall further behind, past half the seqno circle over a few hops.
func TestHeldSeqnoStaysWithinHoldSpan(t *testing.T) {
	s := newStar(t, []string{"o0"})
	v, h, o := s.engines["v"], s.engines["h"], s.engines["o0"]
	s.run(10 * time.Second)
	ask := func(seqno uint16) {
		mustReceive(t, h, s.now, "m", encodeMessage([]entry{{kind: kindRequest, origin: "o0", seqno: seqno, hopcnt: 127}}))
		s.run(time.Second)
	}
	r, _ := h.Lookup("o0")
	ask(r.Seqno + 1)   // the answer goes to all, and starts the 64 s
	s.run(time.Second) // o0 may raise again
	ep := o.selfEpoch
	if o.seqno+5000 < o.seqno {
		ep++ // past 0: the next epoch
	}
	if !o.raiseSelf(o.at(s.now), ep, o.seqno+5000, true) {
		t.Fatal("o0 did not jump")
	}
	s.run(time.Second)
	rh, _ := h.Lookup("o0")
	rv, _ := v.Lookup("o0")
	if rh.Seqno != o.seqno || rv.Seqno == rh.Seqno {
		t.Fatalf("after the jump: h holds %d, v %d, o0 is at %d; want h at o0's and v behind", rh.Seqno, rv.Seqno, o.seqno)
	}
	ask(rh.Seqno)
	rv, ok := v.Lookup("o0")
	t.Logf("o0 at %d, h %d, v %d (%v)", o.seqno, rh.Seqno, rv.Seqno, ok)
	if !ok || rh.Seqno-rv.Seqno >= holdSpan {
		t.Fatalf("v holds o0 at %d (reachable %v), %d behind h's %d: want less than %d", rv.Seqno, ok, rh.Seqno-rv.Seqno, rh.Seqno, holdSpan)
	}
}
