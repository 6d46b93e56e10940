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

func attestMsg(origin string, seqno uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte(origin+"\x00"), seqno)
}

func (c *edCertifier) Attest(origin string, seqno uint16) ([]byte, error) {
	return ed25519.Sign(c.key(origin), attestMsg(origin, seqno)), nil
}

func (c *edCertifier) Verify(origin string, seqno uint16, att []byte) error {
	pub := c.key(origin).Public().(ed25519.PublicKey)
	if !ed25519.Verify(pub, attestMsg(origin, seqno), att) {
		return errBadAttestation
	}
	return nil
}

// plainCertifier is a trivial certifier for property tests: an attestation
// is "origin/seqno", checked by comparison.
type plainCertifier struct{}

func (plainCertifier) Attest(origin string, seqno uint16) ([]byte, error) {
	return attestMsg(origin, seqno), nil
}

func (plainCertifier) Verify(origin string, seqno uint16, att []byte) error {
	if string(att) != string(attestMsg(origin, seqno)) {
		return errBadAttestation
	}
	return nil
}
