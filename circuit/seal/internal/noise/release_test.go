package noise

import (
	"bytes"
	"reflect"
	"testing"
)

// TestReleaseZeroesAndReuses: Release leaves no key material in the
// state it gives back, and handshakes made from released states agree
// with their peers as fresh ones do, round after round.
func TestReleaseZeroesAndReuses(t *testing.T) {
	cs := NewCipherSuite(DH25519, CipherAESGCM, HashSHA256)
	for round := range 4 {
		i, err := NewHandshakeState(Config{CipherSuite: cs, Pattern: HandshakeNN, Initiator: true})
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewHandshakeState(Config{CipherSuite: cs, Pattern: HandshakeNN})
		if err != nil {
			t.Fatal(err)
		}
		m1, _, _, err := i.WriteMessage(nil, []byte("one"))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := r.ReadMessage(nil, m1); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		m2, rs1, _, err := r.WriteMessage(nil, []byte("two"))
		if err != nil {
			t.Fatal(err)
		}
		p, is1, _, err := i.ReadMessage(nil, m2)
		if err != nil || string(p) != "two" {
			t.Fatalf("round %d: reply %q, %v", round, p, err)
		}
		ct, err := is1.Encrypt(nil, nil, []byte("record"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := rs1.Decrypt(nil, nil, ct); err != nil || !bytes.Equal(pt, []byte("record")) {
			t.Fatalf("round %d: record %q, %v", round, pt, err)
		}
		for _, hs := range []*HandshakeState{i, r} {
			hs.Release()
			if !reflect.ValueOf(*hs).IsZero() {
				t.Fatalf("round %d: a released state kept its contents", round)
			}
		}
	}
}
