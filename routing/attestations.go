package routing

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"
	"weak"
)

// attestations holds, for each attestation some engine of the process
// keeps, a weak pointer to the one copy they all share and the verdict
// that admitted it, found by a hash of the attestation's content (attKey)
// and compared with the copy's content, so that only equal attestations
// share a copy or a verdict. The copy does not depend on the Certifier:
// the nodes of a simulation each have their own, and every node kept a
// copy of every origin's attestation (3.3 GB at 5000 nodes before the
// first convergence). The table keeps
// no copy alive (weak pointers): when the last engine holding one drops
// it, the collector frees it, and its entry is swept away as the table
// grows.
//
// Verdicts: many engines in one process (a simulation, a test harness, a
// host running several nodes) each receive the same attestation of every
// origin; an engine whose Certifier is the one that verified the entry's
// copy within verifyCacheTTL accepts it without checking it again, so
// that each distinct (certifier, origin, seqno, attestation) is checked
// once, not once per engine. Only successes are remembered: a failure may
// be transient (a certificate not yet valid) and failures are bounded per
// neighbour anyway (Config.MaxVerifyFailures). A verdict lives as long as
// the copy it admitted: an attestation no engine keeps is checked again.
//
// One lookup gives both the verdict and the copy: a SHA-256 digest of the
// content keyed a verdict cache and then this table, two locked lookups
// and a digest per (engine, origin, seqno), and verifying took 13 % of
// the CPU samples of a 1000-node cold start against 8 % now. The hash is seeded at random per
// process, so that made-up attestations cannot be made to collide with
// the ones held; two that collide by chance only share no entry (the
// later one takes it). An entry whose copy was freed holds no content.
var attestations = newAttTable()

// verifyCacheTTL bounds how long a verdict is reused, in the time of the
// engines' callers, so that a certificate that expires or a CA that is
// reloaded stops being believed by engines that did not check it
// themselves within this delay. (An engine keeps the attestation it
// verified for as long as it holds the origin, so this delay changes
// nothing for a single engine.)
const verifyCacheTTL = time.Minute

// attSweepMin is the table size below which dead entries are not swept.
const attSweepMin = 1024

type attTable struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[uint64]attSlot // hash of attKey -> copy and verdict
	// sweepAt is the size at which the entries of freed copies are
	// removed: twice the entries left by the last sweep, so that a sweep
	// costs O(1) per insertion and the table holds at most twice the
	// copies that were live then.
	sweepAt int
}

func newAttTable() *attTable {
	return &attTable{seed: maphash.MakeSeed(), m: make(map[uint64]attSlot)}
}

// attSlot is an entry of the table: the shared copy, and the Certifier
// that last verified it (nil: none whose verdicts are shared) and when,
// in nanoseconds since 1970 (time.Time.Sub, which went through Add and
// Equal for times without a monotonic reading, was a third of the
// instructions of finding a verdict).
type attSlot struct {
	w  weak.Pointer[attestation]
	c  Certifier
	at int64
}

// attKey encodes what an attestation covers, as the table's key, into
// scratch (reused): len(origin):u8 origin seqno:u16 attestation.
func attKey(scratch []byte, origin string, seqno uint16, att []byte) []byte {
	b := append(scratch[:0], byte(len(origin)))
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint16(b, seqno)
	return append(b, att...)
}

// verdict returns the shared copy of the attestation whose key is k if c
// verified it within verifyCacheTTL of now, or nil.
func (t *attTable) verdict(k []byte, c Certifier, now time.Time) *attestation {
	if c == nil {
		return nil
	}
	h := maphash.Bytes(t.seed, k)
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[h]
	if !ok || s.c != c {
		return nil
	}
	if d := time.Duration(now.UnixNano() - s.at); d <= -verifyCacheTTL || d >= verifyCacheTTL {
		return nil
	}
	if a := s.w.Value(); a != nil && a.key == string(k) {
		return a
	}
	return nil
}

// intern returns the shared copy of the attestation whose key is k,
// making it (of epoch, the Certifier's reading of it) if no engine holds
// one, and records that c (if not nil)
// verified it at now. k may alias a received message; the copy does not.
func (t *attTable) intern(k []byte, epoch uint64, c Certifier, now time.Time) *attestation {
	h := maphash.Bytes(t.seed, k)
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[h]
	a := s.w.Value()
	if ok && a != nil && a.key == string(k) {
		if c != nil {
			s.c, s.at = c, now.UnixNano()
			t.m[h] = s
		}
		return a
	}
	if len(t.m) >= t.sweepAt {
		for k, s := range t.m {
			if s.w.Value() == nil {
				delete(t.m, k)
			}
		}
		t.sweepAt = max(attSweepMin, 2*len(t.m))
	}
	a = newAttestation(k, epoch)
	t.m[h] = attSlot{w: weak.Make(a), c: c, at: now.UnixNano()}
	return a
}

// len returns the number of entries (tests).
func (t *attTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
