package seal

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal/internal/noise"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Keys is a node's end-to-end identity: its certificate, the static X25519
// key derived from the certificate's Ed25519 key, and the signed KeyRecord
// that binds the two.
type Keys struct {
	id     *identity.Identity
	static noise.DHKey
	record KeyRecord
	rec    []byte // record, encoded
	dh     *staticDH
	seen   verified

	tickets  *tickets  // sessions this node resumes, per destination
	sessions *sessions // sessions this node issued, per ticket id
	life     time.Duration
	now      func() time.Time
	// small: this end neither states nor reads large records
	// (SmallRecordsOnly).
	small bool
}

// NewKeys derives the node's static X25519 key from id's Ed25519 key
// (HKDF-SHA256, so it survives restarts while the certificate key is
// unchanged) and signs its KeyRecord, which expires with the certificate.
func NewKeys(id *identity.Identity) (*Keys, error) {
	priv, err := hkdf.Key(sha256.New, id.Key.Seed(), nil, "circuitmesh seal static x25519", 32)
	if err != nil {
		return nil, fmt.Errorf("seal keys of %q: %w", id.Node, err)
	}
	pk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("seal keys of %q: %w", id.Node, err)
	}
	k := &Keys{id: id, static: noise.DHKey{Private: priv, Public: pk.PublicKey().Bytes()}}
	k.record = KeyRecord{Mesh: id.Mesh, Node: id.Node, Expiry: id.Cert.NotAfter.Truncate(1e9)}
	copy(k.record.Key[:], k.static.Public)
	k.record.Sign(id.Key)
	k.rec = k.record.Marshal()
	if k.dh, err = newStaticDH(priv); err != nil {
		return nil, fmt.Errorf("seal keys of %q: %w", id.Node, err)
	}
	k.seen.m = newNameCache[[32]byte, verifiedID](cacheMax)
	k.tickets, k.sessions = newTickets(cacheMax), newSessions(cacheMax)
	k.life, k.now = SessionLifetime, time.Now
	return k, nil
}

// SmallRecordsOnly makes these keys' handshakes behave as those of nodes
// that predate large records: they state nothing about record sizes, send
// and read records of at most MaxData bytes, and ignore the other end's
// statement. It is for testing mixed versions; call it before the first
// handshake.
func (k *Keys) SmallRecordsOnly() { k.small = true }

// Record returns the node's signed key record.
func (k *Keys) Record() KeyRecord { return k.record }

// Node is the name the keys belong to.
func (k *Keys) Node() string { return k.id.Node }

// CacheEvictions counts the entries a cache of peer identities dropped to
// make room for a new one (each cache holds at most 4,096 entries, and at
// most 4 of one node name).
type CacheEvictions struct {
	// Own counts entries of the new entry's own node name: the name held
	// its 4, or the cache was full and no other name held more.
	Own uint64
	// Other counts entries of another node name, dropped because the
	// cache was full: that node's next handshake verifies its identity in
	// full again, or computes its static-static secret again.
	Other uint64
}

// CacheStats are the evictions from the caches of Keys.
type CacheStats struct {
	// Identities is the cache of verified peer identities (certificate
	// and key record).
	Identities CacheEvictions
	// Secrets is the cache of verified peer static keys and their
	// static-static secrets.
	Secrets CacheEvictions
}

// CacheStats returns the evictions from k's caches of peer identities,
// since NewKeys, or since the NewKeys of the first Keys in a chain of
// ContinueStats.
func (k *Keys) CacheStats() CacheStats {
	return CacheStats{Identities: k.seen.m.evicted.load(), Secrets: k.dh.known.evicted.load()}
}

// ContinueStats makes k count its cache evictions into the counters of
// prev, the keys k replaces: CacheStats of either then returns the totals
// of both, evictions from prev's caches after the swap included, so a
// running total does not go backwards. Call it before k's first handshake.
func (k *Keys) ContinueStats(prev *Keys) {
	k.seen.m.evicted = prev.seen.m.evicted
	k.dh.known.evicted = prev.dh.known.evicted
}
