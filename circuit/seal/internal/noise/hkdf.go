package noise

import (
	"encoding"
	"hash"
)

// hasher is the hash state of one handshake, reused by every MixHash and
// HKDF of it. Upstream creates a hash per MixHash and an hmac.New per HMAC
// (four per three-output HKDF); here HMAC is computed over the one reused
// hash with the key's pads built in place (RFC 2104), so a handshake
// allocates its hash once. HKDF's outputs, all keyed by one temporary key,
// start from the hash states saved after that key's pads (as hmac.Reset
// does), when the hash can save and restore its state.
type hasher struct {
	h     hash.Hash
	saved savable // h, if it can save its state
	block int
	ipad  []byte // h's state after the temporary key's inner pad (in ibuf)
	opad  []byte // and after its outer pad (in obuf)
	ibuf  [256]byte
	obuf  [256]byte
	pad   [128]byte // the largest block size of the HashFuncs (SHA-512, BLAKE2b)
	key   [64]byte  // a hashed long key; the largest output size
	inner [64]byte
	temp  [64]byte // HKDF's temporary key
	outs  [3][64]byte
}

// savable is a hash whose state can be saved and restored.
type savable interface {
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

func (m *hasher) init(h HashFunc) {
	if m.h == nil {
		m.h = h.Hash()
		m.block = m.h.BlockSize()
		m.saved, _ = m.h.(savable)
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

// keyed saves h's states after key's inner and outer pads, for keyedMac;
// it reports false if h cannot.
func (m *hasher) keyed(key []byte) bool {
	if m.saved == nil || len(key) > m.block {
		return false
	}
	pad := m.pad[:m.block]
	clear(pad)
	copy(pad, key)
	for i := range pad {
		pad[i] ^= 0x36
	}
	var err error
	m.h.Reset()
	m.h.Write(pad)
	if m.ipad, err = m.saved.AppendBinary(m.ibuf[:0]); err != nil {
		return false
	}
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	m.h.Reset()
	m.h.Write(pad)
	m.opad, err = m.saved.AppendBinary(m.obuf[:0])
	return err == nil
}

// keyedMac appends HMAC(key, a | b) to out, key the last one given to
// keyed.
func (m *hasher) keyedMac(out, a, b []byte) []byte {
	if m.saved.UnmarshalBinary(m.ipad) != nil {
		panic("noise: hash state does not restore")
	}
	m.h.Write(a)
	m.h.Write(b)
	inner := m.h.Sum(m.inner[:0])
	if m.saved.UnmarshalBinary(m.opad) != nil {
		panic("noise: hash state does not restore")
	}
	m.h.Write(inner)
	return m.h.Sum(out)
}

// wipe clears the key material the last HKDF left in m.
func (m *hasher) wipe() {
	clear(m.pad[:])
	clear(m.key[:])
	clear(m.inner[:])
	clear(m.temp[:])
	clear(m.outs[:])
	clear(m.ibuf[:])
	clear(m.obuf[:])
	m.h.Reset()
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
	mac := func(out, a, b []byte) []byte { return m.mac(out, tempKey, a, b) }
	if m.keyed(tempKey) {
		mac = m.keyedMac
	}
	out1 := mac(m.outs[0][:0], one, nil)
	if outputs == 1 {
		return out1, nil, nil
	}
	out2 := mac(m.outs[1][:0], out1, two)
	if outputs == 2 {
		return out1, out2, nil
	}
	out3 := mac(m.outs[2][:0], out2, three)
	return out1, out2, out3
}
