package seal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

type mesh struct {
	ca   *identity.CA
	keys map[string]*Keys
}

func newMesh(t testing.TB, names ...string) *mesh {
	t.Helper()
	ca, err := identity.NewCA("m", 0)
	if err != nil {
		t.Fatal(err)
	}
	m := &mesh{ca: ca, keys: map[string]*Keys{}}
	for _, n := range names {
		id, err := ca.Issue(n, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m.keys[n], err = NewKeys(id); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// handshake runs src -> the node answering as dst (responder), with
// src believing it talks to want.
func handshake(t testing.TB, src, responder *Keys, want string, peer *KeyRecord, early []byte) (*Session, *Session, *Responder, error) {
	t.Helper()
	return handshakeFlag(t, src, responder, want, peer, early, nil)
}

// handshakeFlag is handshake with the open header's large-records flag as
// the responder receives it: *flag, or as the source states it (nil).
func handshakeFlag(t testing.TB, src, responder *Keys, want string, peer *KeyRecord, early []byte, flag *bool) (*Session, *Session, *Responder, error) {
	t.Helper()
	pro := Prologue(want, src.Node(), "svc", 0)
	ini, err := src.Initiate(pro, want, peer)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m1, err := ini.First(nil, early, now)
	if err != nil {
		t.Fatal(err)
	}
	r, err := responder.Respond(pro, m1[2:], src.Node(), NewStrikes(0, 0, now.Add(-time.Second)), now)
	if err != nil {
		return nil, nil, nil, err
	}
	if flag == nil {
		r.SourceLarge(ini.StatesLarge())
	} else {
		r.SourceLarge(*flag)
	}
	m2, rs, err := r.Reply(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	is, m3, err := ini.Finish(m2[2:], nil, now)
	if err != nil {
		return nil, nil, r, err
	}
	if rs == nil {
		if rs, err = r.Finish(m3[2:], now); err != nil {
			return nil, nil, r, err
		}
	}
	return is, rs, r, nil
}

func TestHandshakeIKAndXX(t *testing.T) {
	m := newMesh(t, "s", "d")
	rec := m.keys["d"].Record()
	for _, peer := range []*KeyRecord{&rec, nil} {
		is, rs, r, err := handshake(t, m.keys["s"], m.keys["d"], "d", peer, nil)
		if err != nil {
			t.Fatalf("IK=%v: %v", peer != nil, err)
		}
		if r.PeerRecord().Node != "s" {
			t.Fatalf("responder authenticated %q, want s", r.PeerRecord().Node)
		}
		rec, err := is.Seal(nil, RecordData, []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		typ, data, err := rs.Open(rec[2:])
		if err != nil || typ != RecordData || string(data) != "hello" {
			t.Fatalf("open: %d %q %v", typ, data, err)
		}
		// The destination's refusal, the other way.
		rec, err = rs.Seal(nil, RecordRefused, []byte("denied by rule at line 2"))
		if err != nil {
			t.Fatal(err)
		}
		typ, data, err = is.Open(rec[2:])
		if err != nil || typ != RecordRefused || string(data) != "denied by rule at line 2" {
			t.Fatalf("open refusal: %d %q %v", typ, data, err)
		}
	}
}

// A node with a valid certificate answering for another name cannot
// complete the handshake: in IK it cannot decrypt (the source must retry
// in full), in XX its certificate names the wrong node.
func TestHandshakeImpostor(t *testing.T) {
	m := newMesh(t, "s", "d", "evil")
	rec := m.keys["d"].Record()
	if _, _, _, err := handshake(t, m.keys["s"], m.keys["evil"], "d", &rec, []byte("secret")); !errors.Is(err, ErrRetry) {
		t.Fatalf("IK to an impostor: %v, want ErrRetry", err)
	}
	if _, _, _, err := handshake(t, m.keys["s"], m.keys["evil"], "d", nil, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("XX to an impostor: %v, want ErrAuth", err)
	}
	// A source claiming another name: the responder checks the certificate
	// against the claimed source.
	pro := Prologue("d", "s", "svc", 0)
	ini, _ := m.keys["evil"].Initiate(pro, "d", &rec)
	m1, _ := ini.First(nil, nil, time.Now())
	_, err := m.keys["d"].Respond(pro, m1[2:], "s", NewStrikes(0, 0, time.Now().Add(-time.Second)), time.Now())
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("source impersonation: %v, want ErrAuth", err)
	}
}

func TestStrikesRefuseReplayAndStale(t *testing.T) {
	now := time.Now()
	s := NewStrikes(2, time.Minute, now.Add(-time.Second))
	eph := bytes.Repeat([]byte{1}, 32)
	if err := s.Check(eph, "s1", now, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(eph, "s1", now, now); !errors.Is(err, ErrReplay) || !errors.Is(err, ErrRetry) {
		t.Fatalf("replay: %v", err)
	}
	if err := s.Check(bytes.Repeat([]byte{2}, 32), "s2", now.Add(-2*time.Minute), now); !errors.Is(err, ErrRetry) {
		t.Fatalf("stale timestamp: %v", err)
	}
	if err := s.Check(bytes.Repeat([]byte{3}, 32), "s3", now.Add(-2*time.Second), now); !errors.Is(err, ErrRetry) {
		t.Fatalf("stamped before start: %v", err)
	}
	s.Check(bytes.Repeat([]byte{4}, 32), "s4", now, now)
	if err := s.Check(bytes.Repeat([]byte{5}, 32), "s5", now, now); !errors.Is(err, ErrRetry) {
		t.Fatalf("full register: %v", err)
	}
	// Once the window passed, old keys make room.
	later := now.Add(2 * time.Minute)
	if err := s.Check(bytes.Repeat([]byte{5}, 32), "s5", later, later); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// Both directions rekey at the same record counts, so long circuits keep
// working, with records of a byte and of MaxLargeData bytes; a record
// replayed across a rekey does not authenticate.
func TestSessionRekey(t *testing.T) {
	m := newMesh(t, "s", "d")
	rec := m.keys["d"].Record()
	for _, size := range []int{1, MaxLargeData} {
		is, rs, _, err := handshake(t, m.keys["s"], m.keys["d"], "d", &rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		is.rekeyEvery, rs.rekeyEvery = 3, 3
		data := make([]byte, size)
		var old []byte
		for i := 0; i < 10; i++ {
			data[0] = byte(i)
			r, err := is.Seal(nil, RecordData, data)
			if err != nil {
				t.Fatal(err)
			}
			if i == 1 {
				old = append([]byte(nil), r[2:]...)
			}
			if _, d, err := rs.Open(r[2:]); err != nil || d[0] != byte(i) || len(d) != size {
				t.Fatalf("size %d, record %d: %v", size, i, err)
			}
		}
		if _, _, err := rs.Open(old); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("size %d: replayed record: %v", size, err)
		}
	}
}

func TestKeyRecordVerify(t *testing.T) {
	m := newMesh(t, "a", "b")
	ra := m.keys["a"].Record()
	got, err := UnmarshalKeyRecord(ra.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	cert := m.keys["a"].id.Cert
	if err := got.Verify(cert, "m", "a", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(m.keys["b"].id.Cert, "m", "a", time.Now()); !errors.Is(err, ErrAuth) {
		t.Fatalf("record checked with another node's certificate: %v", err)
	}
	if err := got.Verify(cert, "m", "a", got.Expiry.Add(time.Second)); !errors.Is(err, ErrAuth) {
		t.Fatalf("expired record: %v", err)
	}
	bad := *got
	bad.Key[0] ^= 1
	if err := bad.Verify(cert, "m", "a", time.Now()); !errors.Is(err, ErrAuth) {
		t.Fatalf("altered key: %v", err)
	}
}

func FuzzUnmarshalKeyRecord(f *testing.F) {
	m := newMesh(f, "a")
	r := m.keys["a"].Record()
	f.Add(r.Marshal())
	f.Add([]byte{1, 1, 'm', 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := UnmarshalKeyRecord(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedRecord) {
				t.Fatalf("error %v does not wrap ErrMalformedRecord", err)
			}
			return
		}
		if !bytes.Equal(rec.Marshal(), b) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}

// The destination decodes first messages from anyone (one-message, full
// and resumed): arbitrary bytes fail with ErrAuth or ErrRetry, never a
// panic; only s's own first message authenticates, as s.
func FuzzRespond(f *testing.F) {
	m := newMesh(f, "s", "d")
	rec := m.keys["d"].Record()
	pro := Prologue("d", "s", "svc", 0)
	for _, peer := range []*KeyRecord{&rec, nil} {
		ini, _ := m.keys["s"].Initiate(pro, "d", peer)
		m1, _ := ini.First(nil, nil, time.Now())
		f.Add(m1[2:])
	}
	f.Add([]byte{modeIK})
	// A resumed first message, once d issued s a session.
	if _, _, _, err := handshake(f, m.keys["s"], m.keys["d"], "d", &rec, nil); err != nil {
		f.Fatal(err)
	}
	ini, _ := m.keys["s"].Initiate(pro, "d", &rec)
	if !ini.Resumed() {
		f.Fatal("no session to resume")
	}
	m1, _ := ini.First(nil, []byte("early"), time.Now())
	f.Add(m1[2:])
	f.Add(m1[2:18])
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := m.keys["d"].Respond(pro, msg, "s", NewStrikes(0, 0, time.Now().Add(-time.Hour)), time.Now())
		if err == nil && !r.Full() && r.PeerRecord().Key != m.keys["s"].Record().Key {
			t.Fatal("a first message authenticated a key other than the source's")
		}
		if err != nil && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrRetry) {
			t.Fatalf("error %v wraps neither ErrAuth nor ErrRetry", err)
		}
	})
}

// BenchmarkHandshakeIK is one one-message open: both ends' work.
// go test -run '^$' -bench Handshake ./circuit/seal/
func BenchmarkHandshakeIK(b *testing.B) { benchmarkHandshake(b, false) }

// Nobody without the keys makes a record that opens.
func FuzzOpenRecord(f *testing.F) {
	m := newMesh(f, "s", "d")
	rec := m.keys["d"].Record()
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 17))
	// Just over each bound on a record's size (the mutator rarely grows
	// an input to 64 KiB).
	f.Add(make([]byte, 1+MaxData+16+1))
	f.Add(make([]byte, 1+MaxLargeData+16+1))
	_, rs, _, err := handshake(f, m.keys["s"], m.keys["d"], "d", &rec, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		// A failed Open does not advance the session, so one serves all.
		if _, _, err := rs.Open(append([]byte(nil), ct...)); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("forged record: %v", err)
		}
	})
}

// Ephemeral keys generated ahead are each used by one handshake only: many
// more opens than there are spare keys, from both sides, never repeat an
// ephemeral key (the replay register would refuse a repeat), and every
// pair of sessions agrees.
func TestEphemeralKeysNeverRepeat(t *testing.T) {
	m := newMesh(t, "s", "d")
	rec := m.keys["d"].Record()
	pro := Prologue("d", "s", "svc", 0)
	strikes := NewStrikes(0, time.Hour, time.Now().Add(-time.Second))
	replies := map[string]bool{}
	for i := range 8 * spareEphemerals {
		now := time.Now()
		ini, err := m.keys["s"].Initiate(pro, "d", &rec)
		if err != nil {
			t.Fatal(err)
		}
		m1, err := ini.First(nil, []byte{byte(i)}, now)
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.keys["d"].Respond(pro, m1[2:], "s", strikes, now)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		r.SourceLarge(ini.StatesLarge())
		m2, rs, err := r.Reply(nil, now)
		if err != nil {
			t.Fatal(err)
		}
		// The reply starts with the responder's ephemeral public key.
		if e := string(m2[2:34]); replies[e] {
			t.Fatalf("open %d: the destination reused an ephemeral key", i)
		} else {
			replies[e] = true
		}
		is, _, err := ini.Finish(m2[2:], nil, now)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		rec, _ := is.Seal(nil, RecordData, []byte("hello"))
		if _, got, err := rs.Open(rec[2:]); err != nil || string(got) != "hello" {
			t.Fatalf("open %d: sessions disagree: %q, %v", i, got, err)
		}
	}
}

// BenchmarkHandshakeResumed is one resumed open: both ends' work.
func BenchmarkHandshakeResumed(b *testing.B) { benchmarkHandshake(b, true) }

func benchmarkHandshake(b *testing.B, resumed bool) {
	m := newMesh(b, "s", "d")
	rec := m.keys["d"].Record()
	strikes := NewStrikes(1<<20, time.Hour, time.Now().Add(-time.Second))
	pro := Prologue("d", "s", "svc", 0)
	m.keys["d"].life = time.Hour
	if _, _, _, err := handshake(b, m.keys["s"], m.keys["d"], "d", &rec, nil); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !resumed {
			m.keys["s"].ForgetSession("d")
		} else if !m.keys["s"].Resumable("d") {
			// SessionMaxOpens circuits used the ticket: a new one.
			b.StopTimer()
			if _, _, _, err := handshake(b, m.keys["s"], m.keys["d"], "d", &rec, nil); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		now := time.Now()
		ini, _ := m.keys["s"].Initiate(pro, "d", &rec)
		if ini.Resumed() != resumed {
			b.Fatalf("resumed %v, want %v", ini.Resumed(), resumed)
		}
		m1, _ := ini.First(nil, []byte("x"), now)
		r, err := m.keys["d"].Respond(pro, m1[2:], "s", strikes, now)
		if err != nil {
			b.Fatal(err)
		}
		r.SourceLarge(ini.StatesLarge())
		m2, _, _ := r.Reply(nil, now)
		if _, _, err := ini.Finish(m2[2:], nil, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStrikesGrowKeepsEveryKey: the register starts small and grows as
// first messages arrive; every key stays refused as a replay across the
// growth (also when the ring had wrapped), and the bound still holds.
func TestStrikesGrowKeepsEveryKey(t *testing.T) {
	start := time.Now()
	s := NewStrikes(300, time.Minute, start.Add(-time.Second))
	key := func(i int) []byte {
		k := make([]byte, 32)
		k[0], k[1] = byte(i), byte(i>>8)
		return k
	}
	// 50 keys at start, then 100 after 50 s: once the first 50 left the
	// window the ring's head has moved, so later growth copies a wrapped
	// ring.
	for i := range 50 {
		if err := s.Check(key(i), fmt.Sprint(i), start, start); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	mid := start.Add(50 * time.Second)
	for i := 50; i < 150; i++ {
		if err := s.Check(key(i), fmt.Sprint(i), mid, mid); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	late := start.Add(70 * time.Second) // keys 0..49 out of the window
	for i := 150; i < 400; i++ {
		err := s.Check(key(i), fmt.Sprint(i), late, late)
		if i < 150+200 && err != nil { // 100 held + 200 new = max
			t.Fatalf("key %d: %v", i, err)
		}
		if i >= 150+200 && !errors.Is(err, ErrRetry) {
			t.Fatalf("key %d beyond the bound of 300: %v", i, err)
		}
	}
	for i := 50; i < 350; i++ {
		if err := s.Check(key(i), fmt.Sprint(i), late, late); !errors.Is(err, ErrReplay) {
			t.Fatalf("key %d replayed after growth: %v", i, err)
		}
	}
}

// recordSessions is a handshake's two sessions: the source's, which
// seals, and the responder's, which opens.
func recordSessions(t *testing.T) (is, rs *Session) {
	t.Helper()
	m := newMesh(t, "s", "d")
	rec := m.keys["d"].Record()
	is, rs, _, err := handshake(t, m.keys["s"], m.keys["d"], "d", &rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return is, rs
}

// checkRecord fails unless out is a framed data record of data that rs
// opens, and a record Seal makes next opens in the same sequence.
func checkRecord(t *testing.T, is, rs *Session, out, data []byte) {
	t.Helper()
	size := len(data)
	if got := int(binary.BigEndian.Uint16(out)); got != len(out)-2 || len(out) != size+Overhead {
		t.Fatalf("size %d: record of %d bytes, length field %d", size, len(out), got)
	}
	typ, got, err := rs.Open(out[2:])
	if err != nil || typ != RecordData || !bytes.Equal(got, data) {
		t.Fatalf("size %d: open: type %d, %d bytes, %v", size, typ, len(got), err)
	}
	if out, err = is.Seal(nil, RecordData, data); err != nil {
		t.Fatal(err)
	}
	if _, got, err := rs.Open(out[2:]); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("size %d: open of the record sealed next: %v", size, err)
	}
}

// A record sealed in place, with or without room for its tag, opens like
// one Seal made, in sequence with them; one too big is refused.
func TestSealInPlace(t *testing.T) {
	is, rs := recordSessions(t)
	for i, size := range []int{0, 1, 100, MaxData, MaxLargeData} {
		data := bytes.Repeat([]byte{byte(i + 1)}, size)
		var b []byte
		if i%2 == 0 {
			b = make([]byte, RecordHead, RecordHead+size+Overhead) // room for the tag
		} else {
			b = make([]byte, RecordHead, RecordHead+size) // none: a new buffer
		}
		b = append(b, data...)
		b[2] = RecordData
		out, err := is.SealInPlace(b)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if i%2 == 0 && &out[0] != &b[0] {
			t.Errorf("size %d: sealed into a new buffer despite room for the tag", size)
		}
		checkRecord(t, is, rs, out, data)
	}
	if _, err := is.SealInPlace(make([]byte, RecordHead+is.MaxSend()+1)); err == nil {
		t.Error("a record over MaxSend was sealed")
	}
	if _, err := is.SealInPlace(make([]byte, 2)); err == nil {
		t.Error("a record without its head was sealed")
	}
}

// TestStrikesShare: one source fills at most half the register; every
// other source then still gets its share (a 64th of it), until
// many together fill the register; a source's keys leaving the window
// give it room again.
func TestStrikesShare(t *testing.T) {
	const max, share = 256, 256 / 64
	start := time.Now()
	s := NewStrikes(max, time.Minute, start.Add(-time.Second))
	n := 0
	key := func() []byte {
		n++
		k := make([]byte, 32)
		k[0], k[1] = byte(n), byte(n>>8)
		return k
	}
	got := 0
	for range max {
		err := s.Check(key(), "m", start, start)
		if err == nil {
			got++
			continue
		}
		if !errors.Is(err, ErrRetry) || !errors.Is(err, ErrReplayShare) {
			t.Fatalf("m's key %d: %v, want ErrRetry and ErrReplayShare", got, err)
		}
	}
	if got != max/2 {
		t.Fatalf("m holds %d keys, want %d (half the register)", got, max/2)
	}
	// Every other source gets its share, up to the bound.
	others := 0
	for i := 0; others < max-got; i++ {
		for j := range share {
			if err := s.Check(key(), fmt.Sprint("h", i), start, start); err != nil {
				t.Fatalf("source h%d's key %d with %d keys held: %v", i, j, got+others, err)
			}
			if others++; others == max-got {
				break
			}
		}
	}
	if err := s.Check(key(), "late", start, start); !errors.Is(err, ErrRetry) || errors.Is(err, ErrReplayShare) {
		t.Fatalf("a new source at the bound: %v, want the register full", err)
	}
	// m's keys (stamped at start) leave the window first.
	later := start.Add(time.Minute + time.Second)
	if err := s.Check(key(), "m", later, later); err != nil {
		t.Fatalf("m after its keys left the window: %v", err)
	}
}

// A message stamped near the end of the window keeps only its own key:
// the keys that arrived after it are forgotten when their own timestamps
// leave the window, so a source stamping ahead (by a skewed clock or on
// purpose) does not make every other source reach its share early.
func TestStrikesFutureStampHoldsOnlyItsOwnKey(t *testing.T) {
	const max = 4 // share 1, half full at 2 keys
	start := time.Now()
	s := NewStrikes(max, 30*time.Second, start.Add(-time.Second))
	key := func(b byte) []byte { k := make([]byte, 32); k[0] = b; return k }
	if err := s.Check(key(1), "m", start.Add(29*time.Second), start); err != nil {
		t.Fatalf("m's key stamped 29 s ahead: %v", err)
	}
	if err := s.Check(key(2), "a", start, start); err != nil {
		t.Fatalf("a's first key: %v", err)
	}
	if err := s.Check(key(3), "a", start.Add(time.Second), start.Add(time.Second)); !errors.Is(err, ErrReplayShare) {
		t.Fatalf("a's second key with the register half full: %v, want ErrReplayShare", err)
	}
	// 31 s on, a's first key has left the window; m's has not.
	later := start.Add(31 * time.Second)
	if err := s.Check(key(4), "a", later, later); err != nil {
		t.Fatalf("a once its key left the window, m's stamped ahead still in it: %v", err)
	}
	if err := s.Check(key(1), "m", start.Add(29*time.Second), later); !errors.Is(err, ErrReplay) {
		t.Fatalf("m's key replayed within its own window: %v, want ErrReplay", err)
	}
}

// A record sealed from a buffer that keeps its data opens like one Seal
// made, in sequence with them, and leaves that buffer as it was; one too
// big, or without room in its destination, is refused.
func TestSealTo(t *testing.T) {
	is, rs := recordSessions(t)
	for i, size := range []int{0, 1, 100, MaxData, MaxLargeData} {
		plain := append([]byte{RecordData}, bytes.Repeat([]byte{byte(i + 1)}, size)...)
		kept := bytes.Clone(plain)
		out, err := is.SealTo(make([]byte, 0, size+Overhead), plain)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(plain, kept) {
			t.Fatalf("size %d: sealing changed the data it was sealed from", size)
		}
		checkRecord(t, is, rs, out, plain[1:])
	}
	if _, err := is.SealTo(make([]byte, 0, MaxLargeRecord+1), make([]byte, 1+MaxLargeData+1)); err == nil {
		t.Error("a record over MaxSend was sealed")
	}
	if _, err := is.SealTo(make([]byte, 0, 10), make([]byte, 1+100)); err == nil {
		t.Error("a record was sealed into a buffer without room for it")
	}
}

// TestRespondRefusesEarlyBeyondMaxEarly: a source that writes its first
// message itself can put more early data in it than First allows; the
// destination refuses it (ErrAuth), IK and resumed alike. Before, it
// took whatever the message held.
func TestRespondRefusesEarlyBeyondMaxEarly(t *testing.T) {
	m := newMesh(t, "s", "d")
	rec := m.keys["d"].Record()
	pro := Prologue("d", "s", "svc", 0)
	for _, resumed := range []bool{false, true} {
		if resumed {
			if _, _, _, err := handshake(t, m.keys["s"], m.keys["d"], "d", &rec, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			m.keys["s"].ForgetSession("d")
		}
		for _, n := range []int{MaxEarly, MaxEarly + 1} {
			now := time.Now()
			ini, err := m.keys["s"].Initiate(pro, "d", &rec)
			if err != nil {
				t.Fatal(err)
			}
			if ini.Resumed() != resumed {
				t.Fatalf("resumed %v, want %v", ini.Resumed(), resumed)
			}
			m1, err := ini.first(nil, make([]byte, n), now)
			if err != nil {
				t.Fatal(err)
			}
			r, err := m.keys["d"].Respond(pro, m1[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now)
			switch {
			case n <= MaxEarly && (err != nil || len(r.Early()) != n):
				t.Fatalf("resumed %v: %d bytes of early data: %v", resumed, n, err)
			case n > MaxEarly && !errors.Is(err, ErrAuth):
				t.Fatalf("resumed %v: %d bytes of early data taken (err %v), want ErrAuth", resumed, n, err)
			}
		}
	}
}
