package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"

	upstream "github.com/flynn/noise"
)

// recordGCM is the record layer's AES-256-GCM: Noise's AESGCM (the nonce
// is four zero bytes and the 64-bit counter, big-endian), the same bytes
// on the wire as the noise package's own, but each key's cipher builds
// its nonces in a buffer of its own instead of a new one per record: two
// allocations fewer per message and answer of a circuit.
type recordGCM struct{}

func (recordGCM) Cipher(k [32]byte) upstream.Cipher {
	b, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return &gcmCipher{aead: g}
}

func (recordGCM) CipherName() string { return "AESGCM" }

// gcmCipher is one key's cipher. Like the CipherState it belongs to (one
// direction of a Session), it is not safe for concurrent use.
type gcmCipher struct {
	aead  cipher.AEAD
	nonce [12]byte
}

func (c *gcmCipher) nonceFor(n uint64) []byte {
	binary.BigEndian.PutUint64(c.nonce[4:], n)
	return c.nonce[:]
}

func (c *gcmCipher) Encrypt(out []byte, n uint64, ad, plaintext []byte) []byte {
	return c.aead.Seal(out, c.nonceFor(n), plaintext, ad)
}

func (c *gcmCipher) Decrypt(out []byte, n uint64, ad, ciphertext []byte) ([]byte, error) {
	return c.aead.Open(out, c.nonceFor(n), ciphertext, ad)
}
