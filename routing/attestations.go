package routing

import (
	"crypto/sha256"
	"sync"
	"weak"
)

// attestations holds, for each attestation some engine of the process
// keeps, a weak pointer to the one copy they all share, keyed by the
// digest of (origin, seqno, attestation). It does not depend on the
// Certifier: the nodes of a simulation each have their own, so the
// verdict cache (keyed by Certifier) never gave one node another's copy,
// and every node kept a copy of every origin's attestation (3.3 GB at
// 5000 nodes before the first convergence). The table keeps no copy alive
// (weak pointers): when the last engine holding one drops it, the
// collector frees it, and its entry is swept away as the table grows.
var attestations = &attTable{m: make(map[[sha256.Size]byte]weak.Pointer[attestation])}

// attSweepMin is the table size below which dead entries are not swept.
const attSweepMin = 1024

type attTable struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]weak.Pointer[attestation]
	// sweepAt is the size at which the entries of freed copies are
	// removed: twice the entries left by the last sweep, so that a sweep
	// costs O(1) per insertion and the table holds at most twice the
	// copies that were live then.
	sweepAt int
}

// intern returns the shared copy of en's origin and attestation, whose
// digest is d, making it if no engine holds one. en aliases a received
// message; the copy does not.
func (t *attTable) intern(d [sha256.Size]byte, en entry) *attestation {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := t.m[d].Value(); a != nil && a.origin == en.origin && a.att == string(en.att) {
		return a
	}
	if len(t.m) >= t.sweepAt {
		for k, w := range t.m {
			if w.Value() == nil {
				delete(t.m, k)
			}
		}
		t.sweepAt = max(attSweepMin, 2*len(t.m))
	}
	a := newAttestation(en)
	t.m[d] = weak.Make(a)
	return a
}

// len returns the number of entries (tests).
func (t *attTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
