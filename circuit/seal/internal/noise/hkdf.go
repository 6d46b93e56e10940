package noise

import "hash"

// hasher is the hash state of one handshake, reused by every MixHash and
// HKDF of it. Upstream creates a hash per MixHash and an hmac.New per HMAC
// (four per three-output HKDF); here HMAC is computed over the one reused
// hash with the key's pads built in place (RFC 2104), so a handshake
// allocates its hash once.
type hasher struct {
	h     hash.Hash
	block int
	pad   [128]byte // the largest block size of the HashFuncs (SHA-512, BLAKE2b)
	key   [64]byte  // a hashed long key; the largest output size
	inner [64]byte
	temp  [64]byte // HKDF's temporary key
	outs  [3][64]byte
}

func (m *hasher) init(h HashFunc) {
	if m.h == nil {
		m.h = h.Hash()
		m.block = m.h.BlockSize()
	}
}

// sum returns the hash of a | b, appended to out.
func (m *hasher) sum(out, a, b []byte) []byte {
	m.h.Reset()
	m.h.Write(a)
	m.h.Write(b)
	return m.h.Sum(out)
}

// mac appends HMAC(key, a | b) to out.
func (m *hasher) mac(out, key, a, b []byte) []byte {
	if len(key) > m.block {
		key = m.sum(m.key[:0], key, nil)
	}
	pad := m.pad[:m.block]
	clear(pad)
	copy(pad, key)
	for i := range pad {
		pad[i] ^= 0x36
	}
	m.h.Reset()
	m.h.Write(pad)
	m.h.Write(a)
	m.h.Write(b)
	inner := m.h.Sum(m.inner[:0])
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	m.h.Reset()
	m.h.Write(pad)
	m.h.Write(inner)
	return m.h.Sum(out)
}

var (
	one   = []byte{0x01}
	two   = []byte{0x02}
	three = []byte{0x03}
)

// hkdf is the Noise HKDF(chainingKey, inputKeyMaterial) with outputs
// outputs (2 or 3). The outputs are valid until the next call.
func (m *hasher) hkdf(outputs int, chainingKey, inputKeyMaterial []byte) ([]byte, []byte, []byte) {
	if outputs > 3 {
		panic("outputs > 3")
	}
	tempKey := m.mac(m.temp[:0], chainingKey, inputKeyMaterial, nil)
	out1 := m.mac(m.outs[0][:0], tempKey, one, nil)
	if outputs == 1 {
		return out1, nil, nil
	}
	out2 := m.mac(m.outs[1][:0], tempKey, out1, two)
	if outputs == 2 {
		return out1, out2, nil
	}
	out3 := m.mac(m.outs[2][:0], tempKey, out2, three)
	return out1, out2, out3
}
