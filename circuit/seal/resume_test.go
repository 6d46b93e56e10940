package seal

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// open runs one handshake src -> d with early data and checks that a
// record goes through both ways; it returns the responder.
func open(t *testing.T, src, d *Keys, peer *KeyRecord, early string) (*Responder, error) {
	t.Helper()
	is, rs, r, err := handshake(t, src, d, d.Node(), peer, []byte(early))
	if err != nil {
		return r, err
	}
	if got := string(r.Early()); got != early {
		t.Fatalf("early data %q, want %q", got, early)
	}
	for _, p := range []struct{ from, to *Session }{{is, rs}, {rs, is}} {
		rec, err := p.from.Seal(nil, RecordData, []byte("ping"))
		if err != nil {
			t.Fatal(err)
		}
		if _, data, err := p.to.Open(rec[2:]); err != nil || string(data) != "ping" {
			t.Fatalf("record: %q %v", data, err)
		}
	}
	return r, nil
}

// resumedPair is s and d after one one-message handshake: s holds a
// session with d.
func resumedPair(t *testing.T) (m *mesh, s, d *Keys, rec KeyRecord) {
	t.Helper()
	m = newMesh(t, "s", "d")
	s, d = m.keys["s"], m.keys["d"]
	rec = d.Record()
	if _, err := open(t, s, d, &rec, ""); err != nil {
		t.Fatal(err)
	}
	return m, s, d, rec
}

// After one one-message handshake the source holds a session ticket and
// the next circuits resume it: early data arrives, the destination knows
// the source's name, record and groups without its certificate, and each
// circuit has its own keys (a record of one does not open in another).
func TestResumeAfterIK(t *testing.T) {
	m := newMesh(t, "s", "d")
	s, d := m.keys["s"], m.keys["d"]
	rec := d.Record()
	if s.Resumable("d") {
		t.Fatal("a session before any handshake")
	}
	if _, err := open(t, s, d, nil, ""); err != nil { // XX: no ticket
		t.Fatal(err)
	}
	if s.Resumable("d") {
		t.Fatal("the full handshake gave a session")
	}
	r, err := open(t, s, d, &rec, "first")
	if err != nil || r.Resumed() {
		t.Fatalf("IK: resumed=%v %v", r != nil && r.Resumed(), err)
	}
	if !s.Resumable("d") {
		t.Fatal("no session after the one-message handshake")
	}
	var sessions []*Session
	for i := 0; i < 3; i++ {
		is, rs, r, err := handshake(t, s, d, "d", &rec, []byte("again"))
		if err != nil {
			t.Fatal(err)
		}
		if !r.Resumed() || string(r.Early()) != "again" {
			t.Fatalf("open %d: resumed=%v early=%q", i, r.Resumed(), r.Early())
		}
		if r.PeerRecord().Key != s.Record().Key || r.PeerRecord().Node != "s" {
			t.Fatalf("resumed open authenticated %q", r.PeerRecord().Node)
		}
		if _, err := is.Seal(nil, RecordData, nil); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, rs)
	}
	is, _, _, err := handshake(t, s, d, "d", &rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := is.Seal(nil, RecordData, []byte("only for one circuit"))
	for i, rs := range sessions { // same counter (0) in each: keys differ
		if _, _, err := rs.Open(append([]byte(nil), ct[2:]...)); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("a record of one resumed circuit opened in circuit %d: %v", i, err)
		}
	}
}

// A third node with a valid certificate and its own session with the
// destination cannot use another pair's session: neither s's ticket id
// with its own (real) key, nor its own session while claiming to be s.
// The destination still honours s's session afterwards.
func TestResumeThirdNodeRefused(t *testing.T) {
	m := newMesh(t, "s", "d", "evil")
	s, d, evil := m.keys["s"], m.keys["d"], m.keys["evil"]
	rec := d.Record()
	for _, k := range []*Keys{s, evil} {
		if _, err := open(t, k, d, &rec, ""); err != nil {
			t.Fatal(err)
		}
	}
	pro := Prologue("d", "s", "svc", 0)
	now := time.Now()
	strikes := NewStrikes(0, 0, now.Add(-time.Second))
	first := func(k *Keys) []byte {
		ini, err := k.Initiate(pro, "d", &rec)
		if err != nil || !ini.Resumed() {
			t.Fatalf("%s did not resume: %v", k.Node(), err)
		}
		m1, err := ini.First(nil, []byte("transfer 100 to evil"), now)
		if err != nil {
			t.Fatal(err)
		}
		return m1[2:]
	}
	mine, theirs := first(evil), first(s)
	// evil's own session, claiming to be s.
	if _, err := d.Respond(pro, mine, "s", strikes, now); !errors.Is(err, ErrAuth) {
		t.Fatalf("evil's session used as s: %v, want ErrAuth", err)
	}
	// s's ticket id (visible to relays) with evil's key.
	forged := append([]byte(nil), mine...)
	copy(forged[1:17], theirs[1:17])
	if _, err := d.Respond(pro, forged, "s", strikes, now); !errors.Is(err, ErrAuth) {
		t.Fatalf("s's session id with evil's key: %v, want ErrAuth", err)
	}
	// s's session still works.
	r, err := d.Respond(pro, theirs, "s", strikes, now)
	if err != nil || !r.Resumed() || r.PeerRecord().Node != "s" {
		t.Fatalf("s after the attempts: %v", err)
	}
}

// A replayed resumed first message is refused with ErrReplay (wrapped in
// ErrRetry), so its early data is delivered once.
func TestResumeReplayRefused(t *testing.T) {
	_, s, d, rec := resumedPair(t)
	pro := Prologue("d", "s", "svc", 0)
	now := time.Now()
	strikes := NewStrikes(0, 0, now.Add(-time.Second))
	ini, _ := s.Initiate(pro, "d", &rec)
	m1, _ := ini.First(nil, []byte("once"), now)
	if r, err := d.Respond(pro, m1[2:], "s", strikes, now); err != nil || !r.Resumed() {
		t.Fatalf("first: %v", err)
	}
	_, err := d.Respond(pro, m1[2:], "s", strikes, now.Add(time.Second))
	if !errors.Is(err, ErrReplay) || !errors.Is(err, ErrRetry) {
		t.Fatalf("replay: %v, want ErrReplay and ErrRetry", err)
	}
	// A changed open header (another service) does not decrypt (a fresh
	// register: the seen key alone is refused before decrypting).
	if _, err := d.Respond(Prologue("d", "s", "other", 0), m1[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now); !errors.Is(err, ErrAuth) {
		t.Fatalf("other service: %v, want ErrAuth", err)
	}
}

// Sessions end: the destination refuses an expired one (Retry), after
// which the source drops it and the next one-message handshake gives a new
// one; the source itself stops using a ticket at its lifetime.
func TestResumeExpiryAndRefresh(t *testing.T) {
	_, s, d, rec := resumedPair(t)
	pro := Prologue("d", "s", "svc", 0)
	later := time.Now().Add(SessionLifetime + time.Second)
	ini, _ := s.Initiate(pro, "d", &rec)
	m1, _ := ini.First(nil, nil, later)
	if _, err := d.Respond(pro, m1[2:], "s", NewStrikes(0, 0, time.Now()), later); !errors.Is(err, ErrRetry) {
		t.Fatalf("expired session: %v, want ErrRetry", err)
	}
	if !ini.Refused() || s.Resumable("d") {
		t.Fatal("the refused session was kept")
	}
	r, err := open(t, s, d, &rec, "")
	if err != nil || r.Resumed() {
		t.Fatalf("after the refusal: resumed=%v %v, want a one-message handshake", r != nil && r.Resumed(), err)
	}
	if r, err = open(t, s, d, &rec, ""); err != nil || !r.Resumed() {
		t.Fatalf("refreshed session: %v", err)
	}
	s.now = func() time.Time { return time.Now().Add(SessionLifetime) }
	if s.Resumable("d") {
		t.Fatal("the source would use a ticket past its lifetime")
	}
	if ini, _ := s.Initiate(pro, "d", &rec); ini.Resumed() {
		t.Fatal("the source resumed past the ticket's lifetime")
	}
}

// A destination keeps its sessions with a source only for the identity
// the source proved last: once s comes back with a new certificate, the
// sessions of the old one are refused.
func TestResumeDroppedOnNewCertificate(t *testing.T) {
	m, s, d, rec := resumedPair(t)
	pro := Prologue("d", "s", "svc", 0)
	now := time.Now()
	ini, _ := s.Initiate(pro, "d", &rec)
	old, _ := ini.First(nil, nil, now)
	id, err := m.ca.Issue("s", 0)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := NewKeys(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, renewed, d, &rec, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Respond(pro, old[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now); !errors.Is(err, ErrRetry) {
		t.Fatalf("session of s's old certificate: %v, want ErrRetry", err)
	}
}

// The destination's session table is bounded: per source and in all.
func TestSessionsBounded(t *testing.T) {
	ss := newSessions(8)
	for i := 0; i < 40; i++ {
		r := &resumable{source: string(rune('a' + i%5)), expiry: time.Now().Add(time.Hour)}
		r.id[0], r.id[1] = byte(i), 1
		ss.add(r)
	}
	if ss.lru.Len() != 8 || len(ss.byID) != 8 {
		t.Fatalf("%d sessions kept, want 8", ss.lru.Len())
	}
	n := 0
	for src, l := range ss.bySource {
		if len(l) > sessionsPerSource {
			t.Fatalf("%d sessions of %s", len(l), src)
		}
		n += len(l)
	}
	if n != 8 {
		t.Fatalf("per-source index holds %d, want 8", n)
	}
	for i, srcs := range ss.holding[1:] {
		for src := range srcs {
			if len(ss.bySource[src]) != i+1 {
				t.Fatalf("%s indexed as holding %d sessions, holds %d", src, i+1, len(ss.bySource[src]))
			}
		}
	}
	for src, l := range ss.bySource {
		if _, ok := ss.holding[len(l)][src]; !ok {
			t.Fatalf("%s holds %d sessions, not indexed so", src, len(l))
		}
	}
	// Full, with every source holding one: a new source's ticket replaces
	// the least recently used, and a source holding as many as any
	// replaces its own oldest.
	ss = newSessions(3)
	add := func(src string, id byte) {
		r := &resumable{source: src, expiry: time.Now().Add(time.Hour)}
		r.id[0] = id
		ss.add(r)
	}
	add("a", 1)
	add("b", 2)
	add("c", 3)
	if _, ok := ss.lookup([16]byte{1}, time.Now()); !ok {
		t.Fatal("a's session dropped")
	}
	add("d", 4)
	add("d", 5)
	for id, want := range map[byte]bool{1: true, 2: false, 3: true, 4: false, 5: true} {
		if _, ok := ss.byID[[16]byte{id}]; ok != want {
			t.Fatalf("session %d kept %v, want %v", id, ok, want)
		}
	}
	ts := newTickets(3)
	for _, dest := range []string{"a", "b", "c", "d"} {
		ts.put(dest, &ticket{expiry: time.Now().Add(time.Hour)})
	}
	if ts.lru.Len() != 3 || ts.m["a"] != nil {
		t.Fatalf("tickets: %d kept, oldest kept %v", ts.lru.Len(), ts.m["a"] != nil)
	}
}

// The source decodes tickets from IK replies: anything but an empty
// payload or one well-formed ticket is an error, never a panic, and a
// decoded ticket encodes back to the same bytes.
func FuzzParseTicket(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendTicket(nil, [16]byte{1}, [32]byte{2}, time.Minute))
	f.Add(bytes.Repeat([]byte{1}, TicketLen))
	f.Fuzz(func(t *testing.T, p []byte) {
		id, psk, life, ok, err := parseTicket(p)
		if err != nil {
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("error %v does not wrap ErrAuth", err)
			}
			return
		}
		if ok && !bytes.Equal(appendTicket(nil, id, psk, life), p) {
			t.Fatal("decode/encode is not the identity")
		}
		if !ok && len(p) != 0 && life != 0 {
			t.Fatal("a ticket with a lifetime was not accepted")
		}
	})
}

// A session opens at most SessionMaxOpens circuits, counted at both ends.
func TestResumeCountLimit(t *testing.T) {
	_, s, d, rec := resumedPair(t)
	pro := Prologue("d", "s", "svc", 0)
	now := time.Now()
	d.sessions.lru.Front().Value.(*resumable).opens = SessionMaxOpens
	ini, _ := s.Initiate(pro, "d", &rec)
	m1, _ := ini.First(nil, nil, now)
	if _, err := d.Respond(pro, m1[2:], "s", NewStrikes(0, 0, now.Add(-time.Second)), now); !errors.Is(err, ErrRetry) {
		t.Fatalf("used-up session at the destination: %v, want ErrRetry", err)
	}
	ini.Refused()
	if _, err := open(t, s, d, &rec, ""); err != nil { // a new session
		t.Fatal(err)
	}
	s.tickets.m["d"].Value.(*ticketEntry).t.opens = SessionMaxOpens
	if s.Resumable("d") {
		t.Fatal("used-up session resumable at the source")
	}
	if ini, _ := s.Initiate(pro, "d", &rec); ini.Resumed() {
		t.Fatal("the source resumed a used-up session")
	}
}
