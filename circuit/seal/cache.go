package seal

import (
	"crypto/sha256"
	"io"
	"sync"
	"time"

	"github.com/flynn/noise"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// cacheMax bounds each per-node cache below (an arbitrary entry is dropped
// when full).
const cacheMax = 4096

// staticDH is X25519 for one node's handshakes that remembers the
// static-static shared secret (Noise "ss") with peers whose static key was
// verified before: it is the same for every handshake between two nodes,
// so an IK open costs two X25519 operations fewer once the pair has met.
// Only keys passed to allow are remembered, so ephemeral keys never enter.
type staticDH struct {
	static []byte // this node's static private key
	mu     sync.Mutex
	known  map[[32]byte][]byte // verified peer static key → ss (nil: not computed yet)
}

func (d *staticDH) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	return noise.DH25519.GenerateKeypair(rng)
}

func (d *staticDH) DHLen() int     { return noise.DH25519.DHLen() }
func (d *staticDH) DHName() string { return noise.DH25519.DHName() }

func (d *staticDH) DH(priv, pub []byte) ([]byte, error) {
	var k [32]byte
	if len(pub) != len(k) || string(priv) != string(d.static) {
		return noise.DH25519.DH(priv, pub)
	}
	copy(k[:], pub)
	d.mu.Lock()
	v, ok := d.known[k]
	d.mu.Unlock()
	if v != nil {
		return append([]byte(nil), v...), nil
	}
	out, err := noise.DH25519.DH(priv, pub)
	if err == nil && ok {
		d.mu.Lock()
		if _, still := d.known[k]; still {
			d.known[k] = append([]byte(nil), out...)
		}
		d.mu.Unlock()
	}
	return out, err
}

// allow marks pub as a verified peer static key.
func (d *staticDH) allow(pub [32]byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.known[pub]; ok {
		return
	}
	if len(d.known) >= cacheMax {
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
	mu sync.Mutex
	m  map[[32]byte]verifiedID
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
	if _, ok := v.m[k]; !ok && len(v.m) >= cacheMax {
		for k := range v.m {
			delete(v.m, k)
			break
		}
	}
	v.m[k] = id
}
