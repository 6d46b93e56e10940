package node

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestSharedVerdictsStaySound: nodes of one process share what verified,
// and the sharing never makes a node accept what it would refuse alone: a
// tampered signature, a certificate of another CA, a certificate expired
// at the node's time.
func TestSharedVerdictsStaySound(t *testing.T) {
	ca, other := twoCAs(t)
	a, _ := certifierFor(t, ca, "a", testLogger(t))
	c, _ := certifierFor(t, ca, "c", testLogger(t))
	b, _ := certifierFor(t, ca, "b", testLogger(t))
	foreign, _ := certifierFor(t, other, "f", testLogger(t))

	good, err := b.Attest("b", 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify("b", 5, 3, good); err != nil {
		t.Fatalf("a verifies b: %v", err)
	}
	chains, sigs := sharedChains.len(), sharedSigs.len()
	if err := c.Verify("b", 5, 3, good); err != nil {
		t.Fatalf("c verifies b after a: %v", err)
	}
	if sharedChains.len() != chains || sharedSigs.len() != sigs {
		t.Errorf("second node added verdicts (%d→%d certificates, %d→%d signatures), want them shared",
			chains, sharedChains.len(), sigs, sharedSigs.len())
	}
	if _, ok := c.groupsOf("b"); !ok {
		t.Errorf("c has no groups of b after verifying it from the shared cache")
	}

	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1
	if err := c.Verify("b", 5, 3, tampered); !errors.Is(err, errAttestation) {
		t.Errorf("tampered signature of a cached certificate: %v, want errAttestation", err)
	}
	if err := c.Verify("b", 5, 4, good); !errors.Is(err, errAttestation) {
		t.Errorf("cached signature replayed for another seqno: %v, want errAttestation", err)
	}
	if err := foreign.Verify("b", 5, 3, good); !errors.Is(err, identity.ErrUntrusted) {
		t.Errorf("node of another CA accepted a certificate another node's CA verified: %v", err)
	}
	c.now = func() time.Time { return time.Now().Add(10 * 365 * 24 * time.Hour) }
	if err := c.Verify("b", 5, 3, good); !errors.Is(err, identity.ErrExpired) {
		t.Errorf("certificate expired at the node's time accepted from the cache: %v", err)
	}
	c.now = func() time.Time { return time.Now().Add(-24 * time.Hour) }
	if err := c.Verify("b", 5, 3, good); !errors.Is(err, identity.ErrExpired) {
		t.Errorf("certificate not yet valid at the node's time accepted from the cache: %v", err)
	}
}

// TestSharedCacheBounded: however many distinct verdicts are stored, a
// cache holds at most two generations, and the newest are found.
func TestSharedCacheBounded(t *testing.T) {
	var g twoGen[int, struct{}]
	for i := range 3*sharedCacheGen + 100 {
		g.put(i, struct{}{})
		if n := g.len(); n > 2*sharedCacheGen {
			t.Fatalf("%d verdicts cached, bound %d", n, 2*sharedCacheGen)
		}
	}
	if _, ok := g.get(3*sharedCacheGen + 99); !ok {
		t.Error("newest verdict not found")
	}
	if _, ok := g.get(0); ok {
		t.Error("oldest verdict still found after two generations turned over")
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("x")
	sig := ed25519.Sign(key, msg)
	if !verifySig(pub, msg, sig) || !verifySig(pub, msg, sig) || verifySig(pub, []byte("y"), sig) {
		t.Error("signature verdicts wrong")
	}
}

// TestForgedSignatureCheckedOnce: a gossip packet may repeat one forged
// alive message a thousand times; its signature is checked once, and the
// failure stays a failure.
func TestForgedSignatureCheckedOnce(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("member b at 10.0.0.66:7946")
	forged := bytes.Clone(ed25519.Sign(priv, msg))
	forged[0] ^= 1
	before := sigChecks.Load()
	for range 1000 {
		if verifySig(pub, msg, forged) {
			t.Fatal("a forged signature verified")
		}
	}
	if n := sigChecks.Load() - before; n != 1 {
		t.Errorf("1000 copies of one forged signature cost %d Ed25519 checks, want 1", n)
	}
	if !verifySig(pub, msg, ed25519.Sign(priv, msg)) {
		t.Error("the genuine signature of the same message failed after the forgery was cached")
	}
}
