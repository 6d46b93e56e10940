package seal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// FuzzVerifyIdentity decodes the identity payload of a handshake, which
// any node of the mesh, or anyone with a Noise key of its own in a full
// handshake, chooses: it fails with ErrAuth and caches nothing, or names
// the node expected with the key the handshake proved, its early data the
// payload's tail.
func FuzzVerifyIdentity(f *testing.F) {
	m := newMesh(f, "s", "d")
	s, d := m.keys["s"], m.keys["d"]
	now := time.Now()
	f.Add(s.appendIdentity(nil, now, nil))
	f.Add(s.appendIdentity(nil, now, []byte("early data")))
	f.Add(d.appendIdentity(nil, now, nil))
	f.Add(AppendMessage(AppendMessage(nil, s.id.Cert.Raw), d.rec))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		in := bytes.Clone(p)
		// A fresh cache each input: an identity one input verified is not
		// taken from the cache for the next.
		k, err := NewKeys(d.id)
		if err != nil {
			t.Fatal(err)
		}
		id, err := k.verifyIdentity(p, "s", s.static.Public, now)
		if !bytes.Equal(p, in) {
			t.Fatal("verifyIdentity wrote into the payload")
		}
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("error %v does not wrap ErrAuth", err)
			}
			if n := k.seen.m.len(); n != 0 {
				t.Fatalf("a refused identity left %d entries in the cache", n)
			}
			return
		}
		if id.rec.Node != "s" || id.rec.Key != s.record.Key {
			t.Fatalf("identity of %q with key %x taken as s's", id.rec.Node, id.rec.Key)
		}
		if len(id.early) > len(p) || !bytes.Equal(id.early, p[len(p)-len(id.early):]) {
			t.Fatal("early data is not the payload's tail")
		}
		if ts := p[len(p)-len(id.early)-8:]; id.ts.UnixNano() != int64(binary.BigEndian.Uint64(ts)) {
			t.Fatalf("timestamp %v is not the payload's", id.ts)
		}
		// The same payload verifies again, from the cache.
		if _, err := k.verifyIdentity(p, "s", s.static.Public, now); err != nil {
			t.Fatalf("an identity that verified fails from the cache: %v", err)
		}
		if _, err := k.verifyIdentity(p, "s", d.static.Public, now); !errors.Is(err, ErrAuth) {
			t.Fatalf("s's identity verified for d's handshake key: %v", err)
		}
	})
}
