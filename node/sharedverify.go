package node

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Process-wide caches of deterministic verifications, shared by every
// node of the process (a simulation, a test, a host embedding several
// nodes). Every node verifies every origin's attestation: the origin's
// certificate against the mesh CA and its signature over (origin, seqno,
// extra). Both verdicts depend only on their inputs (and, for the
// certificate, on the time, which is checked again on every use), so N
// nodes in one process need to compute each once, not N times. The
// certificate cache keeps successes only; the signature cache keeps
// failures too (its key digests every byte the check reads). Each cache holds two generations of at most
// sharedCacheGen entries, the older dropped when the newer fills, so it
// stays bounded whatever it is fed.
const sharedCacheGen = 1 << 15

// chainKey names a certificate checked in a trust scope: the same
// certificate under another CA, mesh or insecure setting is another key.
type chainKey struct {
	scope [32]byte // trustScope of the verifying identity
	cert  [32]byte // SHA-256 of the certificate's DER
}

// sharedChain is what a certificate that verified says, with its validity
// (and its CA's), checked against the caller's time on every use.
type sharedChain struct {
	fp             [32]byte // SHA-256 of the certificate's DER
	node           string
	groups         []string
	pub            ed25519.PublicKey // a copy, aliasing no message
	notBefore      time.Time
	notAfter       time.Time // the leaf's
	caFrom, caTill time.Time // the CA's validity (zero when insecure)
}

// twoGen is a bounded map of two generations.
type twoGen[K comparable, V any] struct {
	mu       sync.Mutex
	cur, old map[K]V
}

func (g *twoGen[K, V]) get(k K) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	v, ok := g.cur[k]
	if !ok {
		v, ok = g.old[k]
	}
	return v, ok
}

func (g *twoGen[K, V]) put(k K, v V) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur == nil || len(g.cur) >= sharedCacheGen {
		g.old, g.cur = g.cur, make(map[K]V)
	}
	g.cur[k] = v
}

func (g *twoGen[K, V]) len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.cur) + len(g.old)
}

var (
	sharedChains twoGen[chainKey, *sharedChain]
	// sharedSigs holds SHA-256(len(pub) pub len(msg) msg sig) of Ed25519
	// signatures checked, and whether they verified: the digest covers
	// every byte the check reads, so its verdict is the check's. Failures
	// are kept too, or one gossip packet repeating a forged alive message
	// cost a check per copy.
	sharedSigs twoGen[[32]byte, bool]
	// sigChecks counts the Ed25519 checks verifySig ran, sigFails those
	// of them that failed.
	sigChecks, sigFails atomic.Int64
)

// attVerdict is an attestation that verified for origin and seqno under
// the trust scope, with its certificate.
type attVerdict struct {
	scope  [32]byte
	origin string
	seqno  uint16
	chain  *sharedChain
}

// attCache holds the attestations that verified, keyed by their bytes
// (compared whole, so no digest is computed to look one up), in two
// generations like twoGen. It spares the nodes of a process that receive
// the same attestation the hashing of its certificate and signed message.
type attCache struct {
	mu       sync.Mutex
	cur, old map[string]*attVerdict
}

var sharedAtts attCache

func (c *attCache) get(att []byte) *attVerdict {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[string(att)]; ok {
		return v
	}
	return c.old[string(att)]
}

func (c *attCache) put(att []byte, v *attVerdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || len(c.cur) >= sharedCacheGen {
		c.old, c.cur = c.cur, make(map[string]*attVerdict)
	}
	c.cur[string(att)] = v
}

// trustScope digests what a certificate verdict depends on besides the
// certificate and the time: the CA, the mesh name and insecure mode.
func trustScope(id *identity.Identity) [32]byte {
	h := sha256.New()
	if id.Insecure {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	h.Write([]byte(id.Mesh))
	h.Write([]byte{0})
	if id.CA != nil {
		h.Write(id.CA.Raw)
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// verifyChain verifies cert (DER, fingerprint fp) with id at now, using
// and filling the shared cache.
// The result is shared: nodes keep the pointer, not a copy, and never
// modify it.
func verifyChain(id *identity.Identity, scope, fp [32]byte, cert []byte, now time.Time) (*sharedChain, error) {
	k := chainKey{scope: scope, cert: fp}
	if r, ok := sharedChains.get(k); ok && r.validAt(now) {
		return r, nil
	}
	peer, err := id.VerifyPeer([][]byte{cert}, now)
	if err != nil {
		return nil, err
	}
	pub, ok := peer.Cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("certificate of %q has no Ed25519 key: %w", peer.Node, errAttestation)
	}
	r := &sharedChain{
		fp: fp, node: peer.Node, groups: peer.Groups, pub: ed25519.PublicKey(append([]byte(nil), pub...)),
		notBefore: peer.Cert.NotBefore, notAfter: peer.Cert.NotAfter,
	}
	if !id.Insecure && id.CA != nil {
		r.caFrom, r.caTill = id.CA.NotBefore, id.CA.NotAfter
	}
	sharedChains.put(k, r)
	return r, nil
}

// validAt reports whether the certificate and its CA are within their
// validity at now. An expired leaf is reported by the caller with its own
// error; here a miss just makes the caller verify again.
func (r *sharedChain) validAt(now time.Time) bool {
	if now.Before(r.notBefore) || now.After(r.notAfter) {
		return false
	}
	if !r.caTill.IsZero() && (now.Before(r.caFrom) || now.After(r.caTill)) {
		return false
	}
	return true
}

// verifySig is ed25519.Verify with the shared cache of signatures
// checked.
func verifySig(pub ed25519.PublicKey, msg, sig []byte) bool {
	k, ok, seen := cachedSig(pub, msg, sig)
	if seen {
		return ok
	}
	return verifySigKey(k, pub, msg, sig)
}

// cachedSig is the cache key of the signature check and its verdict, if
// seen.
func cachedSig(pub ed25519.PublicKey, msg, sig []byte) (k [32]byte, ok, seen bool) {
	h := sha256.New()
	h.Write([]byte{byte(len(pub))})
	h.Write(pub)
	var l [4]byte
	l[0], l[1], l[2], l[3] = byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
	h.Write(l[:])
	h.Write(msg)
	h.Write(sig)
	h.Sum(k[:0])
	ok, seen = sharedSigs.get(k)
	return k, ok, seen
}

// verifySigKey runs the check whose cache key (cachedSig) is k and caches
// its verdict.
func verifySigKey(k [32]byte, pub ed25519.PublicKey, msg, sig []byte) bool {
	sigChecks.Add(1)
	ok := ed25519.Verify(pub, msg, sig)
	if !ok {
		sigFails.Add(1)
	}
	sharedSigs.put(k, ok)
	return ok
}
