package routing

import (
	"crypto/sha256"
	"encoding/binary"
	"reflect"
	"sync"
	"time"
)

// Verdict cache: attestations that verified, shared by every engine of the
// process that uses the same Certifier value. Many engines in one process
// (a simulation, a test harness, a host running several nodes) each
// receive the same attestation of every origin; with the cache each
// distinct (certifier, origin, seqno, attestation) is checked once, not
// once per engine. Only successes are remembered: a failure may be
// transient (a certificate not yet valid) and failures are bounded per
// neighbour anyway (Config.MaxVerifyFailures).
const (
	// verifyCacheSize bounds the remembered verdicts (two generations of
	// half this size each; the older one is dropped when the newer fills).
	verifyCacheSize = 1 << 16
	// verifyCacheTTL bounds how long a verdict is reused, in the time of
	// the engines' callers, so that a certificate that expires or a CA
	// that is reloaded stops being believed by engines that did not check
	// it themselves within this delay. (An engine keeps the attestation it
	// verified for as long as it holds the origin, so this delay changes
	// nothing for a single engine.)
	verifyCacheTTL = time.Minute
)

// verdictKey names what verified: the certifier and a SHA-256 digest of
// (origin, seqno, attestation), so that an entry takes a fixed ~100 bytes
// whatever the size of the attestation.
type verdictKey struct {
	c Certifier
	d [sha256.Size]byte // sha256(len(origin):u8 origin seqno:u16 attestation)
}

type verdictCache struct {
	mu       sync.Mutex
	cur, old map[verdictKey]verdict
}

// verdict is when an attestation verified. The cache holds digests, not
// attestations: the copies engines keep are shared through attestations
// (attestations.go), whatever their Certifier.
type verdict struct {
	at time.Time
}

var verdicts = &verdictCache{}

// cacheable reports whether c can be part of a map key (a pointer or a
// comparable value); other certifiers are never cached.
func cacheable(c Certifier) bool {
	return c != nil && reflect.TypeOf(c).Comparable()
}

func verdictKeyOf(c Certifier, origin string, seqno uint16, att []byte) verdictKey {
	var buf [1 + MaxNameLen + 2 + 256]byte
	return verdictKey{c: c, d: attDigest(buf[:0], origin, seqno, att)}
}

// attDigest is the SHA-256 digest of (origin, seqno, attestation), hashed
// in one pass over scratch, which it grows if needed (an engine passes
// its own buffer): a hash.Hash allocated per check was one allocation per
// (origin, seqno) at every node.
func attDigest(scratch []byte, origin string, seqno uint16, att []byte) [sha256.Size]byte {
	b := append(scratch[:0], byte(len(origin)))
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint16(b, seqno)
	b = append(b, att...)
	return sha256.Sum256(b)
}

// lookup reports whether k verified within verifyCacheTTL of now.
func (v *verdictCache) lookup(k verdictKey, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	vd, ok := v.cur[k]
	if !ok {
		vd, ok = v.old[k]
	}
	if !ok {
		return false
	}
	d := now.Sub(vd.at)
	return -verifyCacheTTL < d && d < verifyCacheTTL
}

// store remembers that k verified at now.
func (v *verdictCache) store(k verdictKey, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur == nil || len(v.cur) >= verifyCacheSize/2 {
		v.old, v.cur = v.cur, make(map[verdictKey]verdict)
	}
	v.cur[k] = verdict{at: now}
}

// len returns the number of remembered verdicts (tests).
func (v *verdictCache) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.cur) + len(v.old)
}
