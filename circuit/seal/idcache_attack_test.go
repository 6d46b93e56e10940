package seal

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal/internal/noise"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// memberKeys returns keys of id's name with a fresh static X25519 key, not
// the one derived from the certificate's key, and a key record for it
// signed with the certificate's key: what a member running software of
// its own makes, as many as it likes.
func memberKeys(t testing.TB, id *identity.Identity) *Keys {
	t.Helper()
	k, err := NewKeys(id)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.static = noise.DHKey{Private: e.Bytes(), Public: e.PublicKey().Bytes()}
	k.record = KeyRecord{Mesh: id.Mesh, Node: id.Node, Expiry: id.Cert.NotAfter.Truncate(time.Second)}
	copy(k.record.Key[:], k.static.Public)
	k.record.Sign(id.Key)
	k.rec = k.record.Marshal()
	if k.dh, err = newStaticDH(k.static.Private); err != nil {
		t.Fatal(err)
	}
	return k
}

// openIK runs a one-message open from src to d (not resumed) and returns
// what d's side cost: X25519 operations, and identities (certificate and
// key record) d verified in full.
func openIK(t testing.TB, src, d *Keys, strikes *Strikes) (x25519s, verified uint64) {
	t.Helper()
	rec := d.Record()
	pro := Prologue(d.Node(), src.Node(), "svc", 0)
	ini, err := src.InitiateFresh(pro, d.Node(), &rec)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m1, err := ini.First(nil, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	x0, v0 := d.dh.x25519s.Load(), d.seen.full.Load()
	r, err := d.Respond(pro, m1[2:], src.Node(), strikes, now)
	if err != nil {
		t.Fatalf("%s's open: %v", src.Node(), err)
	}
	r.SourceLarge(ini.StatesLarge())
	m2, _, err := r.Reply(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	x25519s, verified = d.dh.x25519s.Load()-x0, d.seen.full.Load()-v0
	if _, _, err := ini.Finish(m2[2:], nil, now); err != nil {
		t.Fatalf("%s's open: %v", src.Node(), err)
	}
	return x25519s, verified
}

// cachedOpenX25519s is what a one-message open costs the destination once
// it holds the source's identity and static-static secret: es, the
// reply's e and ee, se (the reply's ephemeral key is generated ahead and
// not counted), so es, ee and se.
const cachedOpenX25519s = 3

// warm makes d cache src's identity and static-static secret: the first
// open verifies the identity (its ss is computed before), the second
// computes ss and keeps it.
func warm(t testing.TB, src, d *Keys, strikes *Strikes) {
	t.Helper()
	openIK(t, src, d, strikes)
	openIK(t, src, d, strikes)
	if x, v := openIK(t, src, d, strikes); x != cachedOpenX25519s || v != 0 {
		t.Fatalf("%s's third open cost d %d X25519 and %d identity checks, want %d and 0", src.Node(), x, v, cachedOpenX25519s)
	}
}

// A member with a valid certificate signs key records for fresh X25519
// keys of its own name and opens to d with each, one-message handshakes
// that d answers. Each fresh key entered d's caches of verified identities
// and static-static secrets, where one was dropped when full: the member
// pushed out honest sources' entries, and their next opens cost d a
// certificate and key-record check and an X25519 operation more. Now a
// name holds at most keysPerName entries in each, so the honest sources'
// next opens find theirs.
func TestAttackMemberKeysEvictHonestIdentities(t *testing.T) {
	const (
		bound  = 32
		honest = 8
		fresh  = 4 * bound
	)
	names := []string{"d", "m"}
	for i := range honest {
		names = append(names, "h"+string(rune('0'+i)))
	}
	mesh := newMesh(t, names...)
	d := mesh.keys["d"]
	limitCaches(d, bound)
	strikes := NewStrikes(1<<20, time.Hour, time.Now().Add(-time.Second))
	for _, n := range names[2:] {
		warm(t, mesh.keys[n], d, strikes)
	}
	mid := mesh.keys["m"].id
	for range fresh {
		if _, v := openIK(t, memberKeys(t, mid), d, strikes); v != 1 {
			t.Fatalf("m's open with a fresh key cost d %d identity checks, want 1", v)
		}
	}
	seen, known := cachedOf(d, "m", mesh)
	var lost, x25519s, verified uint64
	for _, n := range names[2:] {
		x, v := openIK(t, mesh.keys[n], d, strikes)
		x25519s += x
		verified += v
		if x != cachedOpenX25519s || v != 0 {
			lost++
		}
	}
	t.Logf("after m's %d opens with fresh keys: m holds %d of d's %d verified identities and %d of its %d static-static secrets; "+
		"%d of %d honest sources' next opens cost d more: %d X25519 (%d cached) and %d identity checks (0 cached)",
		fresh, seen, bound, known, bound, lost, honest, x25519s, honest*cachedOpenX25519s, verified)
	if lost != 0 || seen > keysPerName || known > keysPerName {
		t.Fatalf("m holds %d verified identities and %d static-static secrets (at most %d a name); %d of %d honest sources lost theirs",
			seen, known, keysPerName, lost, honest)
	}
}

// Members that sign key records for fresh keys of their own names take,
// once d's caches are full, the entries of names holding more than
// others, theirs: the honest sources, one entry each, keep theirs while
// the names d caches are no more than its bound.
func TestAttackMembersFillIdentityCaches(t *testing.T) {
	const (
		bound   = 16
		honest  = 8
		members = 4
		fresh   = 4 * keysPerName
	)
	names := []string{"d"}
	for i := range honest {
		names = append(names, "h"+string(rune('0'+i)))
	}
	for i := range members {
		names = append(names, "m"+string(rune('0'+i)))
	}
	mesh := newMesh(t, names...)
	d := mesh.keys["d"]
	limitCaches(d, bound)
	strikes := NewStrikes(1<<20, time.Hour, time.Now().Add(-time.Second))
	for _, n := range names[1 : 1+honest] {
		warm(t, mesh.keys[n], d, strikes)
	}
	for range fresh {
		for _, n := range names[1+honest:] {
			openIK(t, memberKeys(t, mesh.keys[n].id), d, strikes)
		}
	}
	held := 0
	for _, n := range names[1+honest:] {
		seen, known := cachedOf(d, n, mesh)
		held += seen
		if seen > keysPerName || known > keysPerName {
			t.Errorf("%s holds %d verified identities and %d static-static secrets, more than %d", n, seen, known, keysPerName)
		}
	}
	lost := 0
	for _, n := range names[1 : 1+honest] {
		if x, v := openIK(t, mesh.keys[n], d, strikes); x != cachedOpenX25519s || v != 0 {
			lost++
		}
	}
	t.Logf("after %d members' %d opens each with fresh keys: they hold %d of d's %d verified identities; %d of %d honest sources' next opens cost d more",
		members, fresh, held, bound, lost, honest)
	if lost != 0 || held != bound-honest {
		t.Fatalf("%d of %d honest sources lost their entries; the members hold %d, want %d", lost, honest, held, bound-honest)
	}
}

// A member replays another node's old certificate and key record, still
// valid (the node renewed its certificate, and sent its old identity to
// the destinations it opened to), in handshakes of its own: d refuses
// them, and they take nothing of that node's share of d's caches, or the
// member could push its current identity out with keysPerName of them.
func TestAttackReplayedOldIdentitiesTakeNoShare(t *testing.T) {
	mesh := newMesh(t, "d", "h", "m")
	d, h := mesh.keys["d"], mesh.keys["h"]
	strikes := NewStrikes(1<<20, time.Hour, time.Now().Add(-time.Second))
	var old []*Keys
	for range keysPerName + 1 {
		id, err := mesh.ca.Issue("h", 0)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewKeys(id)
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, k)
	}
	warm(t, h, d, strikes)
	rec := d.Record()
	for _, o := range old {
		// m's keys, stating h's old certificate and record.
		replay, err := NewKeys(mesh.keys["m"].id)
		if err != nil {
			t.Fatal(err)
		}
		replay.rec = o.rec
		id := *replay.id
		id.Cert = o.id.Cert
		replay.id = &id
		pro := Prologue("d", "m", "svc", 0)
		ini, err := replay.InitiateFresh(pro, "d", &rec)
		if err != nil {
			t.Fatal(err)
		}
		m1, err := ini.First(nil, nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Respond(pro, m1[2:], "m", strikes, time.Now()); !errors.Is(err, ErrAuth) {
			t.Fatalf("m's open stating h's old identity: %v, want ErrAuth", err)
		}
	}
	seen, _ := cachedOf(d, "h", mesh)
	x, v := openIK(t, h, d, strikes)
	t.Logf("after m's %d opens stating h's old identities: d holds %d of h's identities; h's next open cost d %d X25519 and %d identity checks",
		len(old), seen, x, v)
	if x != cachedOpenX25519s || v != 0 {
		t.Fatalf("h's open cost d %d X25519 and %d identity checks, want %d and 0", x, v, cachedOpenX25519s)
	}
}
