package routing

import (
	"crypto/sha256"
	"runtime"
	"sync"
	"weak"
)

// attestations holds, for each attestation some engine of the process
// keeps, a weak pointer to the one copy they all share, keyed by the
// digest of (origin, seqno, attestation). It does not depend on the
// Certifier: the nodes of a simulation each have their own, so the
// verdict cache (keyed by Certifier) never gave one node another's copy,
// and every node kept a copy of every origin's attestation (3.3 GB at
// 5000 nodes before the first convergence). The table keeps no copy alive:
// when the last engine holding one drops it, the collector frees it and
// its entry is removed, so the table holds at most the attestations held
// by live engines (each bounded by Config.MaxRoutes).
var attestations = &attTable{m: make(map[[sha256.Size]byte]weak.Pointer[attestation])}

type attTable struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]weak.Pointer[attestation]
}

// attRef is what the cleanup of a shared copy needs to remove its entry.
type attRef struct {
	d [sha256.Size]byte
	w weak.Pointer[attestation]
}

// intern returns the shared copy of en's origin and attestation, whose
// digest is d, making it if no engine holds one. en aliases a received
// message; the copy does not.
func (t *attTable) intern(d [sha256.Size]byte, en entry) *attestation {
	t.mu.Lock()
	if a := t.m[d].Value(); a != nil && a.origin == en.origin && a.att == string(en.att) {
		t.mu.Unlock()
		return a
	}
	a := newAttestation(en)
	w := weak.Make(a)
	t.m[d] = w
	t.mu.Unlock()
	runtime.AddCleanup(a, t.forget, attRef{d: d, w: w})
	return a
}

// forget removes the entry of a copy the collector freed, unless a newer
// copy replaced it.
func (t *attTable) forget(r attRef) {
	t.mu.Lock()
	if t.m[r.d] == r.w {
		delete(t.m, r.d)
	}
	t.mu.Unlock()
}

// len returns the number of entries (tests).
func (t *attTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
