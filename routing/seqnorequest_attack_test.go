package routing

import (
	"fmt"
	"testing"
	"time"
)

// hostCertifier is a fakeCertifier that shares no verdicts with other
// engines (it is not comparable: see cacheable), as engines on separate
// hosts share none.
type hostCertifier struct {
	f *fakeCertifier
	_ []byte
}

func (h hostCertifier) Attest(o string, ep uint64, s uint16) ([]byte, error) {
	return h.f.Attest(o, ep, s)
}
func (h hostCertifier) Epoch(a []byte) uint64 { return h.f.Epoch(a) }
func (h hostCertifier) Verify(o string, ep uint64, s uint16, a []byte) error {
	return h.f.Verify(o, ep, s, a)
}

// star is a hub h, origins linked to h only, and v linked to h only; m is
// a neighbour of h that the test speaks for (no engine).
type star struct {
	t       *testing.T
	engines map[string]*Engine
	order   []string
	now     time.Time
	// sent, if set, sees every message an engine sends, before it is
	// delivered (messages to m are dropped after it).
	sent func(from string, msg Message)
}

func newStar(t *testing.T, origins []string) *star {
	s := &star{t: t, engines: map[string]*Engine{}, now: ct0}
	add := func(name string) {
		e, err := New(Config{Self: name, Certifier: hostCertifier{f: &fakeCertifier{}}})
		if err != nil {
			t.Fatal(err)
		}
		s.engines[name] = e
		s.order = append(s.order, name)
	}
	add("h")
	add("v")
	for _, o := range origins {
		add(o)
	}
	h := s.engines["h"]
	h.LinkUp(s.now, "m", 10, false)
	for _, name := range s.order[1:] {
		h.LinkUp(s.now, name, 10, false)
		s.engines[name].LinkUp(s.now, "h", 10, false)
	}
	return s
}

// deliver hands every queued message to its engine, at once, until none
// is left; messages to m are dropped.
func (s *star) deliver() {
	deliverAll(s.t, s.now, s.order, s.engines, func(from string, msg Message, _ bool) {
		if s.sent != nil {
			s.sent(from, msg)
		}
	})
}

// deliverAll hands every message the engines (in order) send to its
// engine, at once, until none is left. seen, if set, sees each message
// before it is delivered, and whether it is (its destination is among
// engines; the others are dropped).
func deliverAll(t testing.TB, now time.Time, order []string, engines map[string]*Engine, seen func(from string, msg Message, delivered bool)) {
	for {
		moved := false
		for _, name := range order {
			for _, msg := range engines[name].Ready().Messages {
				to, ok := engines[msg.To]
				if seen != nil {
					seen(name, msg, ok)
				}
				if !ok {
					continue
				}
				moved = true
				if err := to.Receive(now, name, msg.Payload); err != nil {
					t.Fatal(err)
				}
			}
		}
		if !moved {
			return
		}
	}
}

// run advances the star by d in steps of 5 ms.
func (s *star) run(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.now = s.now.Add(5 * time.Millisecond)
		tickDue(s.now, s.order, s.engines)
		s.deliver()
	}
}

// tickDue ticks, in order, each engine whose next tick is due at now.
func tickDue(now time.Time, order []string, engines map[string]*Engine) {
	for _, name := range order {
		e := engines[name]
		if nt := e.NextTick(); !nt.IsZero() && !nt.After(now) {
			e.Tick(now)
		}
	}
}

// TestAttackSeqnoRequestsSpendAnotherNeighboursCheckBudget: m, a
// neighbour of h with a valid certificate, asks h once a second for a
// newer seqno of each of 150 origins (seqno requests, which every origin
// answers by raising its seqno, at most once a second). Each origin
// raises, h forwards the 150 new seqnos to its other neighbour v, and
// v's budget of checks for h (nbCheckRate, 50 a second) is spent by
// them: v drops the rest unchecked. The updates they cover renew v's
// routes through h at the seqnos v checked before (renewAtChecked);
// when they were dropped, v's routes to those origins expired, and v, an
// honest node with an honest neighbour, lost destinations that are up
// and one hop from h (up to 80 of 150 lost, 89 left after 25 s).
func TestAttackSeqnoRequestsSpendAnotherNeighboursCheckBudget(t *testing.T) {
	const n = 150
	origins := make([]string, n)
	for i := range origins {
		origins[i] = fmt.Sprintf("o%03d", i)
	}
	s := newStar(t, origins)
	s.run(10 * time.Second)
	v, h := s.engines["v"], s.engines["h"]
	for _, o := range origins {
		if _, ok := v.Lookup(o); !ok {
			t.Fatalf("before the attack: v has no route to %s", o)
		}
	}
	// m asks h, once a second, for the next seqno of every origin.
	minReach := n
	for sec := 0; sec < 25; sec++ {
		var batch []entry
		for _, o := range origins {
			r, _ := h.Lookup(o)
			batch = append(batch, entry{kind: kindRequest, origin: o, seqno: r.Seqno + 1, hopcnt: 5})
			if len(batch) == DefaultMaxRoutesPerMessage {
				mustReceive(t, h, s.now, "m", encodeMessage(batch))
				batch = nil
			}
		}
		if len(batch) > 0 {
			mustReceive(t, h, s.now, "m", encodeMessage(batch))
		}
		s.run(time.Second)
		reach := 0
		for _, o := range origins {
			if _, ok := v.Lookup(o); ok {
				reach++
			}
		}
		minReach = min(minReach, reach)
		if sec%5 == 4 {
			t.Logf("after %2ds of requests: v reaches %d of %d origins (checks dropped at v: %d)", sec+1, reach, n, v.Stats().ThrottledAttestations)
		}
	}
	for _, o := range origins {
		r, _ := v.Lookup(o)
		if s, _, ok := v.Attestation(o); !ok || seqnoLess(s, r.Seqno) {
			t.Fatalf("v routes to %s at seqno %d, newer than the attestation it checked (%d, %v)", o, r.Seqno, s, ok)
		}
	}
	if minReach < n {
		t.Errorf("a neighbour's seqno requests at h cut v off from up to %d of %d origins that stayed up (v dropped %d of h's attestations unchecked)",
			n-minReach, n, v.Stats().ThrottledAttestations)
	}
}
