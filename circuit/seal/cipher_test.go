package seal

import (
	"bytes"
	"testing"

	upstream "github.com/flynn/noise"
)

// TestRecordCipherMatchesNoise: the record layer's cipher seals the bytes
// the noise package's AESGCM seals, each opens what the other sealed, and
// both rekey to the same key: ends of either kind read each other.
func TestRecordCipherMatchesNoise(t *testing.T) {
	std := upstream.NewCipherSuite(upstream.DH25519, upstream.CipherAESGCM, upstream.HashSHA256)
	var k [32]byte
	for i := range k {
		k[i] = byte(i * 7)
	}
	for _, n := range []uint64{0, 1, 255, 1 << 32, 1 << 62} {
		ours := upstream.UnsafeNewCipherState(recordSuite, k, n)
		theirs := upstream.UnsafeNewCipherState(std, k, n)
		for round := range 3 {
			plain := bytes.Repeat([]byte{byte(round)}, 100+round)
			a, err := ours.Encrypt(nil, nil, plain)
			if err != nil {
				t.Fatal(err)
			}
			b, err := theirs.Encrypt(nil, nil, plain)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("nonce %d round %d: records differ", n, round)
			}
			// Each opens the other's record (the states' counters moved on
			// alike: open with fresh states at the same nonce).
			o, t2 := upstream.UnsafeNewCipherState(recordSuite, ours.UnsafeKey(), ours.Nonce()-1), upstream.UnsafeNewCipherState(std, theirs.UnsafeKey(), theirs.Nonce()-1)
			if p, err := o.Decrypt(nil, nil, b); err != nil || !bytes.Equal(p, plain) {
				t.Fatalf("nonce %d round %d: the record cipher did not open the noise package's record: %v", n, round, err)
			}
			if p, err := t2.Decrypt(nil, nil, a); err != nil || !bytes.Equal(p, plain) {
				t.Fatalf("nonce %d round %d: the noise package did not open the record cipher's record: %v", n, round, err)
			}
			ours.Rekey()
			theirs.Rekey()
			if ours.UnsafeKey() != theirs.UnsafeKey() {
				t.Fatalf("nonce %d round %d: rekeyed to different keys", n, round)
			}
		}
	}
}

// TestRecordsAllocateNothing: sealing a record into a buffer with room and
// opening it in place allocate nothing (the nonces included).
func TestRecordsAllocateNothing(t *testing.T) {
	m := newMesh(t, "s", "d")
	rec := m.keys["d"].Record()
	is, rs, _, err := handshake(t, m.keys["s"], m.keys["d"], "d", &rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("x")
	buf := make([]byte, 0, len(data)+Overhead)
	allocs := testing.AllocsPerRun(1000, func() {
		out, err := is.Seal(buf[:0], RecordData, data)
		if err == nil {
			_, _, err = rs.Open(out[2:])
		}
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("sealing and opening a record allocated %.2f times, want 0", allocs)
	}
}
