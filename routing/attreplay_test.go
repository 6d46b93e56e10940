package routing

import (
	"testing"
	"time"
)

// TestOwnAttestationsCannotDriveAnOrigin: a neighbour that collected our
// attestations round the 16-bit circle (a seqno request a second gets one
// every 4,096 seqnos) always holds one "newer" than our seqno. Replaying
// them every 20 ms raised, signed and announced a new seqno each time
// (each verified at every node). Now the first one is jumped past at once,
// as after a restart, and the rest at the pace of any raise: once a
// second.
func TestOwnAttestationsCannotDriveAnOrigin(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "m", 10, false)
	e.Tick(ct0)
	e.Ready()
	const span = 5 * time.Second
	first := e.seqno + 30000
	for at := ct0; at.Sub(ct0) < span; at = at.Add(20 * time.Millisecond) {
		s := e.seqno + 30000 // always ahead in circular order
		if err := e.Receive(at, "m", encodeMessage([]entry{att("a", s, attOf("a", s))})); err != nil {
			t.Fatal(err)
		}
		e.Tick(at)
		e.Ready()
		if at == ct0 && !seqnoLess(first, e.seqno) {
			t.Fatalf("our attestation of seqno %d from before a restart left our seqno at %d, want past it at once", first, e.seqno)
		}
	}
	if bumps := e.Stats().SeqnoBumps; bumps > uint64(span/time.Second)+1 {
		t.Fatalf("replayed attestations of our own raised our seqno %d times in %v, want at most once a second", bumps, span)
	}
}

func attOf(origin string, seqno uint16) string {
	b, _ := (&fakeCertifier{}).Attest(origin, seqno)
	return string(b)
}
