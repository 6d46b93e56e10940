package routing

import (
	"testing"
	"time"
)

// replayNet is a line of engines linked at cost 10, the last one also
// linked to m, a member with a valid certificate of its own that the test
// speaks for, stepped every 5 ms of simulated time. seen (if set) sees
// every message. Each engine starts at the epoch epochs gives it, or at
// 1: its attestations sign an epoch, which orders them (of epoch 0, an
// origin of the release before, they compare modulo 2^16, attNewer).
type replayNet struct {
	t     *testing.T
	names []string
	eng   map[string]*Engine
	now   time.Time
	seen  func(from string, msg Message, delivered bool)
}

func newReplayNet(t *testing.T, epochs map[string]uint64, names ...string) *replayNet {
	return newReplayNetWith(t, func(cfg *Config) {
		if ep, ok := epochs[cfg.Self]; ok {
			cfg.Epoch = ep
		}
	}, names...)
}

// newReplayNetWith is newReplayNet with each engine's configuration
// (epoch 1, a shared fake certifier) changed by tweak.
func newReplayNetWith(t *testing.T, tweak func(*Config), names ...string) *replayNet {
	n := &replayNet{t: t, names: names, eng: map[string]*Engine{}, now: ct0}
	for i, name := range names {
		cfg := Config{Self: name, Seed: int64(i + 3), Epoch: 1, Certifier: hostCertifier{f: &fakeCertifier{}}}
		tweak(&cfg)
		e, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n.eng[name] = e
	}
	for i := 1; i < len(names); i++ {
		x, y := names[i-1], names[i]
		n.eng[x].LinkUp(n.now, y, 10, false)
		n.eng[y].LinkUp(n.now, x, 10, false)
	}
	n.eng[names[len(names)-1]].LinkUp(n.now, "m", 10, false)
	return n
}

func (n *replayNet) step() {
	n.now = n.now.Add(5 * time.Millisecond)
	tickDue(n.now, n.names, n.eng)
	seen := n.seen
	if seen == nil {
		seen = func(string, Message, bool) {}
	}
	deliverAll(n.t, n.now, n.names, n.eng, seen)
}

// run steps for d and returns how long e had no route to dest meanwhile.
func (n *replayNet) run(d time.Duration, e *Engine, dest string) (down time.Duration) {
	for end := n.now.Add(d); n.now.Before(end); {
		n.step()
		if e == nil {
			continue
		}
		if _, ok := e.Lookup(dest); !ok {
			down += 5 * time.Millisecond
		}
	}
	return down
}

// collect makes m keep every attestation of origin that reaches it.
func (n *replayNet) collect(origin string) map[uint16][]byte {
	got := map[uint16][]byte{}
	n.seen = func(from string, msg Message, delivered bool) {
		if delivered || msg.To != "m" {
			return
		}
		es, err := decodeMessage(msg.Payload, maxEntriesLimit)
		if err != nil {
			n.t.Fatal(err)
		}
		for _, en := range es {
			if (en.kind == kindAttest || en.kind == kindAttUpdate) && en.origin == origin {
				got[en.seqno] = append([]byte(nil), en.att...)
			}
		}
	}
	return got
}

// askAhead makes m ask e, once a second, for origin's seqno 64 ahead of
// e's route (as much as a raise moves it) until origin moved by span.
func (n *replayNet) askAhead(e *Engine, origin string, span uint16) {
	o := n.eng[origin]
	first := o.seqno
	for reqs := 0; o.seqno-first < span; reqs++ {
		if reqs > 2000 {
			n.t.Fatalf("%s moved %d in %d requests", origin, o.seqno-first, reqs)
		}
		r, _ := e.Lookup(origin)
		mustReceive(n.t, e, n.now, "m", encodeMessage([]entry{{kind: kindRequest, origin: origin, seqno: r.Seqno + 64, hopcnt: 127}}))
		n.run(time.Second, nil, "")
	}
}

// replayThenLeave makes m advertise origin at distance 1 under the
// attestation att of seqno for 6 s, then its link to d go down, and
// returns how long d had no route to origin in the next 600 s.
func (n *replayNet) replayThenLeave(d *Engine, origin string, seqno uint16, att []byte) time.Duration {
	for range 6 {
		mustReceive(n.t, d, n.now, "m", encodeMessage([]entry{
			{kind: kindAttest, origin: origin, seqno: seqno, att: att},
			{kind: kindUpdate, origin: origin, seqno: seqno, metric: 10, hops: 1},
		}))
		n.run(time.Second, nil, "")
	}
	d.LinkDown(n.now, "m")
	return n.run(600*time.Second, d, origin)
}

// TestAttackOldLifeAttestationReplay: line a - b - c - d, and m linked to
// d. Origin a restarted; its previous life signed seqnos up to k past the
// one this life starts at, and m kept them. m replays one (bytes a really
// signed, with a route at its seqno) for 6 s, then leaves. With
// attestations ordered by their 16-bit seqno alone (and node starting
// every life at the same seqno), d took it as newer than a's current
// one, moved its feasibility distance there, and after m left had no
// route to a for 190 s (k = 3,200) and for the whole 600 s (k = 30,000):
// a's own routes were unfeasible, and requests raise a by 64 a second.
// Now the previous life's attestations are of an older epoch: d ignores
// them and keeps its route through c.
func TestAttackOldLifeAttestationReplay(t *testing.T) {
	for _, k := range []uint16{0, 3200, 30000} {
		n := newReplayNet(t, map[string]uint64{"a": 2}, "a", "b", "c", "d")
		n.run(10*time.Second, nil, "")
		a, d := n.eng["a"], n.eng["d"]
		s0, _, _ := a.Attestation("a")
		prev := fakeAtt("a", 1, s0+k) // what the previous life (epoch 1) signed
		down := n.replayThenLeave(d, "a", s0+k, prev)
		r, ok := d.Lookup("a")
		t.Logf("k=%d: d without a route to a for %v of 600 s after m left; d now %v via %s at seqno %d (a at %d)", k, down, ok, r.NextHop, r.Seqno, a.seqno)
		if held, _, _ := d.Attestation("a"); held == s0+k && k != 0 {
			t.Errorf("k=%d: d holds the previous life's attestation of %d", k, held)
		}
		if down > time.Second || !ok {
			t.Errorf("k=%d: d had no route to a for %v after m left (reachable now: %v), want at most 1 s", k, down, ok)
		}
	}
}

// TestAttackWrapReplay: no restart. m keeps every attestation of a that
// d sends it, and asks (through d) once a second for a's seqno 64 ahead;
// after about 9 minutes a's seqno moved more than half the 16-bit circle
// from the first ones m kept, which then compared newer than a's current
// one. m replays the oldest of those as above: d had no route to a for
// the whole 600 s after m left. Now a moves to its next epoch when its
// seqno passes 0, the old attestations are older than the current one,
// and d ignores them.
func TestAttackWrapReplay(t *testing.T) {
	n := newReplayNet(t, nil, "a", "b", "c", "d")
	got := n.collect("a")
	n.run(10*time.Second, nil, "")
	a, d := n.eng["a"], n.eng["d"]
	first := a.seqno
	n.askAhead(d, "a", 36000)
	var A uint16
	var att []byte
	for s, b := range got {
		if seqnoLess(a.seqno, s) && (att == nil || seqnoLess(A, s)) {
			A, att = s, b
		}
	}
	if att == nil {
		t.Fatal("no attestation m kept compares newer than a's seqno")
	}
	t.Logf("a moved %d seqnos from %d to %d (epoch %d); m kept %d attestations of a; %d reads %d ahead", a.seqno-first, first, a.seqno, a.selfEpoch, len(got), A, A-a.seqno)
	down := n.replayThenLeave(d, "a", A, att)
	r, ok := d.Lookup("a")
	t.Logf("d without a route to a for %v of 600 s after m left; d now %v at seqno %d (a at %d)", down, ok, r.Seqno, a.seqno)
	if down > time.Second || !ok {
		t.Errorf("d had no route to a for %v after m left (reachable now: %v), want at most 1 s", down, ok)
	}
}

// TestAttackAlternatingOldAttestations: line x - b - h, and m linked to
// h, collecting x's attestations while it drives x's seqno on as above.
// Sending no route at all, m then sends h two of them in turn, every
// 500 ms: A1, about 32,000 past h's route in circular order, and A2, 832
// past A1 and so more than half the circle past h's route. Compared by
// seqno modulo 2^16 each was newer than the other: each was taken,
// dropped every route to x (b's included) and moved the feasibility
// distance on an attestation alone, and h had no route to x for 44.8 s of
// the 60 s. Now both are older than x's current attestation: h ignores
// them unchecked.
func TestAttackAlternatingOldAttestations(t *testing.T) {
	n := newReplayNet(t, nil, "x", "b", "h")
	got := n.collect("x")
	n.run(10*time.Second, nil, "")
	h := n.eng["h"]
	n.askAhead(h, "x", 34000)
	n.run(10*time.Second, nil, "")
	r, _ := h.Lookup("x")
	// The seqnos m kept closest past the targets.
	pick := func(want uint16) (uint16, []byte) {
		var bs uint16
		var ba []byte
		best := 1 << 20
		for s, a := range got {
			if d := int(s - want); d < best {
				best, bs, ba = d, s, a
			}
		}
		return bs, ba
	}
	A1, a1 := pick(r.Seqno + 32000)
	A2, a2 := pick(r.Seqno + 32800)
	if !seqnoLess(r.Seqno, A1) || !seqnoLess(A1, A2) || !seqnoLess(A2, r.Seqno) {
		t.Fatalf("route at %d, A1 %d, A2 %d: not a cycle", r.Seqno, A1, A2)
	}
	b0 := h.Stats()
	var down time.Duration
	for i := range 120 {
		en := entry{kind: kindAttest, origin: "x", seqno: A1, att: a1}
		if i%2 == 1 {
			en = entry{kind: kindAttest, origin: "x", seqno: A2, att: a2}
		}
		mustReceive(t, h, n.now, "m", encodeMessage([]entry{en}))
		down += n.run(500*time.Millisecond, h, "x")
	}
	st := h.Stats()
	t.Logf("route at %d, A1 %d, A2 %d: h without x for %v of 60 s; checked %d of m's attestations", r.Seqno, A1, A2, down, st.Verified-b0.Verified)
	if down > 0 {
		t.Errorf("h had no route to x for %v of the 60 s m alternated two old attestations", down)
	}
	if st.Verified != b0.Verified {
		t.Errorf("h checked %d old attestations, want none", st.Verified-b0.Verified)
	}
}
