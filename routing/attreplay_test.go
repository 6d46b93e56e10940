package routing

import (
	"testing"
	"time"
)

// TestOwnAttestationsCannotDriveAnOrigin: a neighbour that holds our
// attestations of newer (epoch, seqno) pairs than ours (signed by a
// previous life whose clock ran ahead) makes us jump past the first one
// at once, as after a restart, and the rest at the pace of any raise:
// once a second. (Before attestations had epochs, one that collected our
// attestations round the 16-bit circle always held one "newer" than our
// seqno, and replaying them every 20 ms raised, signed and announced a
// new seqno each time.)
func TestOwnAttestationsCannotDriveAnOrigin(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "m", 10, false)
	e.Tick(ct0)
	e.Ready()
	const span = 5 * time.Second
	first := e.seqno + 30000
	for at := ct0; at.Sub(ct0) < span; at = at.Add(20 * time.Millisecond) {
		s, ep := e.seqno+30000, e.selfEpoch+1 // always newer
		if err := e.Receive(at, "m", encodeMessage([]entry{att("a", s, string(fakeAtt("a", ep, s)))})); err != nil {
			t.Fatal(err)
		}
		e.Tick(at)
		e.Ready()
		if at == ct0 && (e.selfEpoch != 1 || e.seqno != first+1) {
			t.Fatalf("our attestation of (1, %d) left us at (%d, %d), want one past it at once", first, e.selfEpoch, e.seqno)
		}
	}
	if bumps := e.Stats().SeqnoBumps; bumps > uint64(span/time.Second)+1 {
		t.Fatalf("replayed attestations of our own raised our seqno %d times in %v, want at most once a second", bumps, span)
	}
}

func attOf(origin string, seqno uint16) string {
	b, _ := (&fakeCertifier{}).Attest(origin, 0, seqno)
	return string(b)
}

// TestOwnAttestationInTheGapRaisesPastIt: an attestation of ours that
// arrives within the second after a raise is jumped past when the second
// ends, not capped like a request's raise (maxSelfJump).
func TestOwnAttestationInTheGapRaisesPastIt(t *testing.T) {
	e := certEngine(t, &fakeCertifier{})
	e.LinkUp(ct0, "m", 10, false)
	e.Tick(ct0)
	e.Ready()
	s1 := e.seqno + 100
	mustReceive(t, e, ct0, "m", encodeMessage([]entry{att("a", s1, attOf("a", s1))}))
	if !seqnoLess(s1, e.seqno) {
		t.Fatalf("first attestation: seqno %d not past %d", e.seqno, s1)
	}
	at := ct0.Add(10 * time.Millisecond)
	s2 := e.seqno + 20000
	mustReceive(t, e, at, "m", encodeMessage([]entry{att("a", s2, attOf("a", s2))}))
	for range 150 {
		at = at.Add(10 * time.Millisecond)
		e.Tick(at)
		e.Ready()
	}
	if !seqnoLess(s2, e.seqno) {
		t.Fatalf("an attestation of ours for seqno %d, received within the second after a raise, left our seqno at %d after it", s2, e.seqno)
	}
}
