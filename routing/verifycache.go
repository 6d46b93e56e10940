package routing

import (
	"crypto/sha256"
	"encoding/binary"
	"reflect"
	"sync"
	"time"
	"weak"
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

// verdict is when an attestation verified, and the copy of it (with its
// origin's name) the engines that hold it share, if one still does:
// engines that take the verdict from the cache take that copy too, so
// that a process running many engines (a simulation) holds each
// attestation and name once without interning them again per engine. The
// cache itself does not keep the copy alive (a weak pointer): it holds
// digests, not attestations.
type verdict struct {
	at  time.Time
	att weak.Pointer[attestation]
}

var verdicts = &verdictCache{}

// cacheable reports whether c can be part of a map key (a pointer or a
// comparable value); other certifiers are never cached.
func cacheable(c Certifier) bool {
	return c != nil && reflect.TypeOf(c).Comparable()
}

func verdictKeyOf(c Certifier, origin string, seqno uint16, att []byte) verdictKey {
	var buf [1 + MaxNameLen + 2 + 256]byte
	return verdictKeyIn(buf[:0], c, origin, seqno, att)
}

// verdictKeyIn is verdictKeyOf hashing in one pass over scratch, which it
// grows if needed (an engine passes its own buffer): a hash.Hash
// allocated per check was one allocation per (origin, seqno) at every node.
func verdictKeyIn(scratch []byte, c Certifier, origin string, seqno uint16, att []byte) verdictKey {
	b := append(scratch[:0], byte(len(origin)))
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint16(b, seqno)
	b = append(b, att...)
	return verdictKey{c: c, d: sha256.Sum256(b)}
}

// lookup reports whether k verified within verifyCacheTTL of now, with
// the shared copy of the attestation if an engine still holds it (else
// nil).
func (v *verdictCache) lookup(k verdictKey, now time.Time) (*attestation, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	vd, ok := v.cur[k]
	if !ok {
		vd, ok = v.old[k]
	}
	if !ok {
		return nil, false
	}
	d := now.Sub(vd.at)
	if d <= -verifyCacheTTL || d >= verifyCacheTTL {
		return nil, false
	}
	return vd.att.Value(), true
}

// share makes att the copy shared for k, if k is remembered and its copy
// is gone (the engines that held it were dropped), without changing when
// k verified: the engines that take the verdict next share this one.
func (v *verdictCache) share(k verdictKey, att *attestation) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range []map[verdictKey]verdict{v.cur, v.old} {
		if vd, ok := m[k]; ok {
			if vd.att.Value() == nil {
				vd.att = weak.Make(att)
				m[k] = vd
			}
			return
		}
	}
}

// store remembers that k verified at now; att (if not nil) is the copy
// of the attestation to share.
func (v *verdictCache) store(k verdictKey, now time.Time, att *attestation) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cur == nil || len(v.cur) >= verifyCacheSize/2 {
		v.old, v.cur = v.cur, make(map[verdictKey]verdict)
	}
	v.cur[k] = verdict{at: now, att: weak.Make(att)}
}

// len returns the number of remembered verdicts (tests).
func (v *verdictCache) len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.cur) + len(v.old)
}
