package routing_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
)

// edCertifier signs attestations with an Ed25519 key derived from each
// node's name, so tests pay the real cost of a signature check. An
// attestation is the signature over origin and seqno.
type edCertifier struct {
	mu   sync.Mutex
	keys map[string]ed25519.PrivateKey
}

var testCertifier = &edCertifier{keys: make(map[string]ed25519.PrivateKey)}

var errBadAttestation = errors.New("bad attestation")

func (c *edCertifier) key(name string) ed25519.PrivateKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[name]
	if !ok {
		seed := sha256.Sum256([]byte("test key " + name))
		k = ed25519.NewKeyFromSeed(seed[:])
		c.keys[name] = k
	}
	return k
}

// attestMsg is what the test certifiers attest: epoch:u64 origin 0x00
// seqno:u16.
func attestMsg(origin string, epoch uint64, seqno uint16) []byte {
	b := binary.BigEndian.AppendUint64(nil, epoch)
	b = append(b, origin...)
	return binary.BigEndian.AppendUint16(append(b, 0), seqno)
}

// leadingEpoch reads the epoch an attestation of the test certifiers
// starts with.
func leadingEpoch(att []byte) uint64 {
	if len(att) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(att)
}

// An attestation of edCertifier is epoch:u64 and the Ed25519 signature
// of attestMsg.
func (c *edCertifier) Attest(origin string, epoch uint64, seqno uint16) ([]byte, error) {
	return append(binary.BigEndian.AppendUint64(nil, epoch), ed25519.Sign(c.key(origin), attestMsg(origin, epoch, seqno))...), nil
}

func (c *edCertifier) Epoch(att []byte) uint64 { return leadingEpoch(att) }

func (c *edCertifier) Verify(origin string, epoch uint64, seqno uint16, att []byte) error {
	pub := c.key(origin).Public().(ed25519.PublicKey)
	if len(att) < 8 || leadingEpoch(att) != epoch || !ed25519.Verify(pub, attestMsg(origin, epoch, seqno), att[8:]) {
		return errBadAttestation
	}
	return nil
}

// plainCertifier is a trivial certifier for property tests: an attestation
// is attestMsg, checked by comparison.
type plainCertifier struct{}

func (plainCertifier) Attest(origin string, epoch uint64, seqno uint16) ([]byte, error) {
	return attestMsg(origin, epoch, seqno), nil
}

func (plainCertifier) Epoch(att []byte) uint64 { return leadingEpoch(att) }

func (plainCertifier) Verify(origin string, epoch uint64, seqno uint16, att []byte) error {
	if string(att) != string(attestMsg(origin, epoch, seqno)) {
		return errBadAttestation
	}
	return nil
}
