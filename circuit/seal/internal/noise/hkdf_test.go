package noise

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"testing"
)

// upstreamHKDF is upstream's hkdf (hkdf.go of github.com/flynn/noise
// v1.1.0): an hmac.New per HMAC.
func upstreamHKDF(h func() hash.Hash, outputs int, chainingKey, inputKeyMaterial []byte) ([]byte, []byte, []byte) {
	tempMAC := hmac.New(h, chainingKey)
	tempMAC.Write(inputKeyMaterial)
	tempKey := tempMAC.Sum(nil)
	out1MAC := hmac.New(h, tempKey)
	out1MAC.Write([]byte{0x01})
	out1 := out1MAC.Sum(nil)
	if outputs == 1 {
		return out1, nil, nil
	}
	out2MAC := hmac.New(h, tempKey)
	out2MAC.Write(out1)
	out2MAC.Write([]byte{0x02})
	out2 := out2MAC.Sum(nil)
	if outputs == 2 {
		return out1, out2, nil
	}
	out3MAC := hmac.New(h, tempKey)
	out3MAC.Write(out2)
	out3MAC.Write([]byte{0x03})
	return out1, out2, out3MAC.Sum(nil)
}

// The HKDF of every hash, with and without saved key states, and with
// keys longer than a block, is upstream's.
func TestHKDFIsUpstreams(t *testing.T) {
	for _, hf := range []HashFunc{HashSHA256, HashSHA512, HashBLAKE2b, HashBLAKE2s} {
		for _, saved := range []bool{true, false} {
			var m hasher
			m.init(hf)
			if !saved {
				m.saved = nil
			}
			for _, n := range []int{0, 1, 32, 64, 65, 200} {
				ck, ikm := bytes.Repeat([]byte{byte(n)}, n), bytes.Repeat([]byte{0xa5}, n/2)
				for outputs := 1; outputs <= 3; outputs++ {
					a1, a2, a3 := m.hkdf(outputs, ck, ikm)
					b1, b2, b3 := upstreamHKDF(hf.Hash, outputs, ck, ikm)
					if !bytes.Equal(a1, b1) || !bytes.Equal(a2, b2) || !bytes.Equal(a3, b3) {
						t.Fatalf("%s saved %v key %d outputs %d: differs from upstream", hf.HashName(), saved, n, outputs)
					}
				}
			}
		}
	}
}

// BenchmarkHKDF: a three-output HKDF-SHA256 (MixKeyAndHash) as upstream
// computes it, over the reused hash, and from saved key states.
// go test -run '^$' -bench HKDF ./circuit/seal/internal/noise/
func BenchmarkHKDF(b *testing.B) {
	ck, ikm := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	b.Run("upstream", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			upstreamHKDF(sha256.New, 3, ck, ikm)
		}
	})
	for _, saved := range []bool{false, true} {
		name := map[bool]string{false: "reused", true: "saved"}[saved]
		b.Run(name, func(b *testing.B) {
			var m hasher
			m.init(HashSHA256)
			if !saved {
				m.saved = nil
			}
			b.ReportAllocs()
			for b.Loop() {
				m.hkdf(3, ck, ikm)
			}
		})
	}
}
