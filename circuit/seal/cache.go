package seal

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal/internal/noise"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// cacheMax bounds each per-node cache below; tests lower a node's bound
// (nameCache.max).
const cacheMax = 4096

// keysPerName bounds the entries one node name (the name a certificate and
// its key record bind) holds in each cache of peer identities below: a
// node has one current key, and one more for each recent rotation.
const keysPerName = 4

// nameCache is a table of entries that each belong to a node name, bounded
// per name and in all. A name holds at most keysPerName entries: a new
// one replaces the name's oldest. A table holding max entries makes room
// for a new one by dropping the oldest entry of a name that holds the
// most, the new entry's own name when no other holds more. So a member
// that signs key records for fresh keys of its own, as many as it likes,
// holds at most keysPerName entries, and once the table is full replaces
// only its own; and a name holding one entry loses it only to a name new
// to the table while every name holds one (then an arbitrary name's),
// which takes more names than max (cacheMax is the default bound of the
// routing table, node Limits.MaxRoutes). Not safe for concurrent use,
// but for evicted.
type nameCache[K comparable, V any] struct {
	max     int
	entries map[K]nameEntry[V]
	names   map[string][]K // each name's keys, oldest first
	// holding[n] is the set of names holding n entries (n ≥ 1).
	holding [keysPerName + 1]map[string]struct{}
	// evicted counts the entries add dropped; the caches of successive
	// Keys of a node may share it (Keys.ContinueStats).
	evicted *evictions
}

// evictions counts the entries a nameCache dropped to make room for new
// ones.
type evictions struct {
	own   atomic.Uint64 // entries of the new entry's own name
	other atomic.Uint64 // entries of another name: the table was full
}

func (e *evictions) count(own bool) {
	if own {
		e.own.Add(1)
	} else {
		e.other.Add(1)
	}
}

func (e *evictions) load() CacheEvictions {
	return CacheEvictions{Own: e.own.Load(), Other: e.other.Load()}
}

type nameEntry[V any] struct {
	name string
	v    V
}

func newNameCache[K comparable, V any](max int) *nameCache[K, V] {
	c := &nameCache[K, V]{max: max, entries: make(map[K]nameEntry[V]), names: make(map[string][]K), evicted: new(evictions)}
	for i := range c.holding {
		c.holding[i] = make(map[string]struct{})
	}
	return c
}

func (c *nameCache[K, V]) len() int { return len(c.entries) }

func (c *nameCache[K, V]) get(k K) (V, bool) {
	e, ok := c.entries[k]
	return e.v, ok
}

// set replaces k's value if k is there, and reports whether it is.
func (c *nameCache[K, V]) set(k K, v V) bool {
	e, ok := c.entries[k]
	if ok {
		e.v = v
		c.entries[k] = e
	}
	return ok
}

// add stores v for k, which belongs to name. A k already there keeps its
// name and takes v.
func (c *nameCache[K, V]) add(name string, k K, v V) {
	if c.set(k, v) {
		return
	}
	if victim, ok := c.victim(name); ok {
		c.dropOldest(victim)
		c.evicted.count(victim == name)
	}
	c.entries[k] = nameEntry[V]{name: name, v: v}
	n := len(c.names[name])
	c.names[name] = append(c.names[name], k)
	c.moved(name, n, n+1)
}

// victim is the name whose oldest entry makes room for a new one of name,
// if one must.
func (c *nameCache[K, V]) victim(name string) (string, bool) {
	n := len(c.names[name])
	if n >= keysPerName {
		return name, true
	}
	if len(c.entries) < c.max {
		return "", false
	}
	for most := keysPerName; most > n; most-- {
		for v := range c.holding[most] {
			return v, true
		}
	}
	return name, n > 0 // no name holds more than name, which holds one at least
}

func (c *nameCache[K, V]) dropOldest(name string) {
	ks := c.names[name]
	if len(ks) == 0 {
		return
	}
	delete(c.entries, ks[0])
	copy(ks, ks[1:])
	ks = ks[:len(ks)-1]
	if len(ks) == 0 {
		delete(c.names, name)
	} else {
		c.names[name] = ks
	}
	c.moved(name, len(ks)+1, len(ks))
}

// moved keeps holding up to date with name going from holding from
// entries to to.
func (c *nameCache[K, V]) moved(name string, from, to int) {
	if from > 0 {
		delete(c.holding[from], name)
	}
	if to > 0 {
		c.holding[to][name] = struct{}{}
	}
}

// staticDH is X25519 for one node's handshakes. It remembers the
// static-static shared secret (Noise "ss") with peers whose static key was
// verified before: it is the same for every handshake between two nodes,
// so an IK open costs two X25519 operations fewer once the pair has met.
// Only keys passed to allow are remembered, so ephemeral keys never enter.
//
// Every operation is one scalar multiplication: noise.DH25519 goes
// through curve25519.X25519, where crypto/ecdh's NewPrivateKey computes
// the private key's public key first (a second multiplication, unused),
// so the node's static key is parsed once and each handshake's ephemeral
// key is kept parsed by that handshake's handshakeDH.
type staticDH struct {
	static    []byte            // this node's static private key
	staticKey *ecdh.PrivateKey  // the same, parsed
	spare     chan ephemeralKey // ephemeral keys generated ahead (see ephemeral)
	filling   atomic.Bool       // a goroutine is refilling spare
	mu        sync.Mutex
	// known maps verified peer static keys, by the name their key record
	// binds, to ss (nil: not computed yet).
	known *nameCache[[32]byte, []byte]
	// x25519s counts the X25519 operations of this node's handshakes
	// (those served from known excluded; the ephemeral keys generated
	// ahead excluded).
	x25519s atomic.Uint64
}

// spareEphemerals is how many ephemeral keys a node keeps generated ahead
// of the handshakes that use them.
const spareEphemerals = 4

// ephemeralKey is one ephemeral key pair, parsed and encoded.
type ephemeralKey struct {
	key  *ecdh.PrivateKey
	priv []byte
}

func newStaticDH(priv []byte) (*staticDH, error) {
	pk, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return &staticDH{static: priv, staticKey: pk, spare: make(chan ephemeralKey, spareEphemerals),
		known: newNameCache[[32]byte, []byte](cacheMax)}, nil
}

// ephemeral returns a fresh ephemeral key pair, used once. Generating one
// is a scalar multiplication on the path of every open, so keys are
// generated ahead, up to spareEphemerals, by a goroutine that ends once
// the spare keys are there: a handshake takes one that was made while the
// node had nothing else to do, and makes one itself only when none is
// left.
func (d *staticDH) ephemeral() (ephemeralKey, error) {
	var k ephemeralKey
	var err error
	select {
	case k = <-d.spare:
	default:
		if k, err = newEphemeral(); err != nil {
			return k, err
		}
	}
	if len(d.spare) < cap(d.spare) && d.filling.CompareAndSwap(false, true) {
		go d.refill()
	}
	return k, nil
}

func (d *staticDH) refill() {
	defer d.filling.Store(false)
	for len(d.spare) < cap(d.spare) {
		k, err := newEphemeral()
		if err != nil {
			return
		}
		select {
		case d.spare <- k:
		default:
			return
		}
	}
}

func newEphemeral() (ephemeralKey, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return ephemeralKey{}, fmt.Errorf("seal: ephemeral key: %w", err)
	}
	return ephemeralKey{key: k, priv: k.Bytes()}, nil
}

func (d *staticDH) GenerateKeypair(io.Reader) (noise.DHKey, error) {
	k, err := d.ephemeral()
	if err != nil {
		return noise.DHKey{}, err
	}
	return noise.DHKey{Private: k.priv, Public: k.key.PublicKey().Bytes()}, nil
}

func (d *staticDH) DHLen() int     { return noise.DH25519.DHLen() }
func (d *staticDH) DHName() string { return noise.DH25519.DHName() }

func (d *staticDH) DH(priv, pub []byte) ([]byte, error) {
	var k [32]byte
	if len(pub) != len(k) || string(priv) != string(d.static) {
		d.x25519s.Add(1)
		return x25519(nil, priv, pub)
	}
	copy(k[:], pub)
	d.mu.Lock()
	v, ok := d.known.get(k)
	d.mu.Unlock()
	if v != nil {
		return append([]byte(nil), v...), nil
	}
	d.x25519s.Add(1)
	out, err := x25519(d.staticKey, priv, pub)
	if err == nil && ok {
		d.mu.Lock()
		d.known.set(k, append([]byte(nil), out...))
		d.mu.Unlock()
	}
	return out, err
}

// x25519 is X25519(priv, pub) with priv already parsed as key when not nil.
// Like curve25519.X25519 it fails on a low-order pub (an all-zero result).
func x25519(key *ecdh.PrivateKey, priv, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("seal: x25519: %w", err)
	}
	if key == nil {
		if key, err = ecdh.X25519().NewPrivateKey(priv); err != nil {
			return nil, fmt.Errorf("seal: x25519: %w", err)
		}
	}
	out, err := key.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("seal: x25519: %w", err)
	}
	return out, nil
}

// handshakeDH is the X25519 of one handshake: the node's staticDH, plus
// this handshake's ephemeral key kept parsed once generated.
type handshakeDH struct {
	*staticDH
	eph ephemeralKey
}

func (h *handshakeDH) GenerateKeypair(io.Reader) (noise.DHKey, error) {
	k, err := h.ephemeral()
	if err != nil {
		return noise.DHKey{}, err
	}
	h.eph = k
	return noise.DHKey{Private: k.priv, Public: k.key.PublicKey().Bytes()}, nil
}

func (h *handshakeDH) DH(priv, pub []byte) ([]byte, error) {
	if h.eph.key != nil && subtle.ConstantTimeCompare(priv, h.eph.priv) == 1 {
		h.x25519s.Add(1)
		return x25519(h.eph.key, priv, pub)
	}
	return h.staticDH.DH(priv, pub)
}

// allow marks pub as a verified peer static key of node name (the name
// its key record binds).
func (d *staticDH) allow(name string, pub [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.known.get(pub); ok {
		return
	}
	d.known.add(name, pub, nil)
}

// verified remembers identities (certificate and key record) already
// checked, by the name they bind, so a peer's repeated handshakes skip
// parsing its certificate and two signature checks; validity periods are
// still checked every time.
type verified struct {
	mu sync.Mutex
	m  *nameCache[[32]byte, verifiedID]
	// full counts the identities verified in full (certificate chain and
	// key record), not found in m.
	full atomic.Uint64
}

type verifiedID struct {
	peer identity.Peer
	rec  *KeyRecord
}

func idKey(cert, rec []byte) [32]byte {
	h := sha256.New()
	h.Write(cert)
	h.Write([]byte{0})
	h.Write(rec)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// lookup returns a cached identity still valid at now.
func (v *verified) lookup(k [32]byte, now time.Time) (verifiedID, bool) {
	v.mu.Lock()
	id, ok := v.m.get(k)
	v.mu.Unlock()
	if !ok || now.Before(id.peer.Cert.NotBefore) || now.After(id.peer.Cert.NotAfter) || !id.rec.Valid(now) {
		return verifiedID{}, false
	}
	return id, true
}

func (v *verified) store(k [32]byte, id verifiedID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.m.add(id.peer.Node, k, id)
}
