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

// cacheMax bounds each per-node cache below (an arbitrary entry is dropped
// when full); tests lower a node's bound (staticDH.max, verified.max).
const cacheMax = 4096

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
	known     map[[32]byte][]byte // verified peer static key → ss (nil: not computed yet)
	max       int                 // bound of known
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
		known: make(map[[32]byte][]byte), max: cacheMax}, nil
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
	v, ok := d.known[k]
	d.mu.Unlock()
	if v != nil {
		return append([]byte(nil), v...), nil
	}
	d.x25519s.Add(1)
	out, err := x25519(d.staticKey, priv, pub)
	if err == nil && ok {
		d.mu.Lock()
		if _, still := d.known[k]; still {
			d.known[k] = append([]byte(nil), out...)
		}
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

// allow marks pub as a verified peer static key.
func (d *staticDH) allow(pub [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.known[pub]; ok {
		return
	}
	if len(d.known) >= d.max {
		for k := range d.known {
			delete(d.known, k)
			break
		}
	}
	d.known[pub] = nil
}

// verified remembers identities (certificate and key record) already
// checked, so a peer's repeated handshakes skip parsing its certificate and
// two signature checks; validity periods are still checked every time.
type verified struct {
	mu  sync.Mutex
	m   map[[32]byte]verifiedID
	max int // bound of m
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
	id, ok := v.m[k]
	v.mu.Unlock()
	if !ok || now.Before(id.peer.Cert.NotBefore) || now.After(id.peer.Cert.NotAfter) || !id.rec.Valid(now) {
		return verifiedID{}, false
	}
	return id, true
}

func (v *verified) store(k [32]byte, id verifiedID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.m[k]; !ok && len(v.m) >= v.max {
		for k := range v.m {
			delete(v.m, k)
			break
		}
	}
	v.m[k] = id
}
