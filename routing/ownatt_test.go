package routing

import (
	"testing"
	"time"
)

// TestOwnAttestationGoesBackOnlyToItsOrigin: h holds a's attestation of
// (5, 100). Older ones of a, sent every 5 ms for 1 s, draw h's back
// (as a bare attest entry) only to a itself, which sent them, and at
// most once per MinTriggeredInterval; from m, another neighbour, they
// draw nothing.
func TestOwnAttestationGoesBackOnlyToItsOrigin(t *testing.T) {
	h, err := New(Config{Self: "h", Epoch: 1, Certifier: hostCertifier{f: &fakeCertifier{}}})
	if err != nil {
		t.Fatal(err)
	}
	now := ct0
	h.LinkUp(now, "a", 10, false)
	h.LinkUp(now, "m", 10, false)
	mustReceive(t, h, now, "a", encodeMessage([]entry{
		att("a", 100, string(fakeAtt("a", 5, 100))),
		{kind: kindUpdate, origin: "a", seqno: 100, metric: 0, hops: 0},
	}))
	h.Tick(now)
	h.Ready()
	back := map[string]int{} // bare attestations of a sent, by neighbour
	for range 200 {
		now = now.Add(5 * time.Millisecond)
		for _, from := range []string{"m", "a"} {
			mustReceive(t, h, now, from, encodeMessage([]entry{att("a", 50, string(fakeAtt("a", 3, 50)))}))
		}
		if nt := h.NextTick(); !nt.After(now) {
			h.Tick(now)
		}
		for _, msg := range h.Ready().Messages {
			es, err := decodeMessage(msg.Payload, maxEntriesLimit)
			if err != nil {
				t.Fatal(err)
			}
			for i, en := range es {
				if i+1 < len(es) && es[i+1].kind == kindUpdate && es[i+1].origin == en.origin {
					continue // the attestation of the update that follows
				}
				if en.kind == kindAttest && en.origin == "a" {
					if string(en.att) != string(fakeAtt("a", 5, 100)) || en.seqno != 100 {
						t.Fatalf("sent %s a's attestation %q of %d", msg.To, en.att, en.seqno)
					}
					back[msg.To]++
				}
			}
		}
	}
	limit := int(time.Second/h.cfg.MinTriggeredInterval) + 1
	t.Logf("in 1 s, 200 older attestations of a from a and from m drew %d back to a, %d to m", back["a"], back["m"])
	if back["m"] != 0 {
		t.Errorf("m drew a's attestation back %d times, want never", back["m"])
	}
	if back["a"] == 0 || back["a"] > limit {
		t.Errorf("a drew its attestation back %d times in 1 s, want 1 to %d", back["a"], limit)
	}
}
