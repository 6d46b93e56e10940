package routing

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"
	"weak"
)

// fakeCertifier accepts exactly the attestations it issued: "att:" origin
// "/" seqno, followed by "@" epoch unless the epoch is 0. It counts
// verifications.
type fakeCertifier struct{ verified int }

func (c *fakeCertifier) Attest(origin string, epoch uint64, seqno uint16) ([]byte, error) {
	return fakeAtt(origin, epoch, seqno), nil
}

func fakeAtt(origin string, epoch uint64, seqno uint16) []byte {
	if epoch == 0 {
		return fmt.Appendf(nil, "att:%s/%d", origin, seqno)
	}
	return fmt.Appendf(nil, "att:%s/%d@%d", origin, seqno, epoch)
}

func (c *fakeCertifier) Epoch(att []byte) uint64 {
	i := bytes.LastIndexByte(att, '@')
	if i < 0 {
		return 0
	}
	ep, _ := strconv.ParseUint(string(att[i+1:]), 10, 64)
	return ep
}

func (c *fakeCertifier) Verify(origin string, epoch uint64, seqno uint16, att []byte) error {
	c.verified++
	if string(att) != string(fakeAtt(origin, epoch, seqno)) {
		return errors.New("forged")
	}
	return nil
}

var ct0 = time.Unix(1_700_000_000, 0)

func certEngine(t *testing.T, c *fakeCertifier) *Engine {
	t.Helper()
	e, err := New(Config{Self: "a", Certifier: c})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func recvEntries(t *testing.T, e *Engine, from string, entries ...entry) {
	t.Helper()
	if err := e.Receive(ct0, from, encodeMessage(entries)); err != nil {
		t.Fatal(err)
	}
}

func upd(origin string, seqno uint16, metric Metric) entry {
	return entry{kind: kindUpdate, origin: origin, seqno: seqno, metric: metric, hops: 1}
}

func att(origin string, seqno uint16, b string) entry {
	return entry{kind: kindAttest, origin: origin, seqno: seqno, att: []byte(b)}
}

// A neighbour cannot add names it holds no attestation for, forged or
// absent, and forged attestations cost bounded verification work.
func TestCertifiedRefusesMadeUpNames(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "m", 10, false)
	// In messages of 32 names, within m's receive budget at one instant.
	for i := 0; i < 5000; i += 32 {
		var bare, forged []entry
		for j := i; j < min(i+32, 5000); j++ {
			name := fmt.Sprintf("ghost-%d", j)
			bare = append(bare, upd(name, 1, 10))
			forged = append(forged, att(name, 1, "forged"), upd(name, 1, 10))
		}
		recvEntries(t, e, "m", bare...)
		recvEntries(t, e, "m", forged...)
	}
	if got := e.Stats().Destinations; got != 1 {
		t.Fatalf("%d destinations after 5000 made-up names, want 1 (m): %v", got, e.Routes())
	}
	st := e.Stats()
	if st.Uncertified != 10000 {
		t.Errorf("Uncertified = %d, want 10000", st.Uncertified)
	}
	if c.verified > 5*DefaultMaxVerifyFailures {
		t.Errorf("verified %d forged attestations at one instant, budget is %d", c.verified, 5*DefaultMaxVerifyFailures)
	}
	if st.ThrottledAttestations == 0 {
		t.Error("no attestation throttled")
	}
	// An honest origin is still accepted from an honest neighbour.
	e.LinkUp(ct0, "c", 10, false)
	recvEntries(t, e, "c", att("b", 3, "att:b/3"), upd("b", 3, 10))
	if r, ok := e.Lookup("b"); !ok || r.NextHop != "c" {
		t.Fatalf("route to b = %+v, %v; want via c", r, ok)
	}
}

// Only the origin advances its seqno: a bumped seqno without the origin's
// attestation is refused, for others and for ourselves.
func TestCertifiedSeqnoBumpRefused(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	e.LinkUp(ct0, "m", 10, false)
	recvEntries(t, e, "c", att("b", 5, "att:b/5"), upd("b", 5, 30))
	recvEntries(t, e, "m", upd("b", 9, 1))
	recvEntries(t, e, "m", att("b", 5, "att:b/5"), upd("b", 9, 1))
	recvEntries(t, e, "m", att("b", 9, "att:b/5"), upd("b", 9, 1))
	if got := e.Stats().Uncertified; got != 3 {
		t.Errorf("Uncertified = %d after 3 bumped updates, want 3", got)
	}
	// Distance 0 from a relay is impossible whatever the seqno.
	recvEntries(t, e, "m", upd("b", 5, 0))
	if got := e.Stats().Implausible; got != 1 {
		t.Errorf("Implausible = %d after a relay's metric 0, want 1", got)
	}
	r, ok := e.Lookup("b")
	if !ok || r.NextHop != "c" || r.Seqno != 5 {
		t.Fatalf("route to b = %+v; want via c at seqno 5", r)
	}
	self, _ := e.Lookup("a")
	recvEntries(t, e, "m", att("a", self.Seqno+100, "forged"), upd("a", self.Seqno+100, 0))
	if now, _ := e.Lookup("a"); now.Seqno != self.Seqno {
		t.Fatalf("own seqno moved from %d to %d on a forged attestation", self.Seqno, now.Seqno)
	}
	// The origin's own newer attestation moves it.
	recvEntries(t, e, "c", att("b", 6, "att:b/6"), upd("b", 6, 30))
	if r, _ := e.Lookup("b"); r.Seqno != 6 {
		t.Fatalf("seqno = %d after b's attestation of 6", r.Seqno)
	}
}

// Attestations travel with the updates they cover, once per neighbour and
// seqno.
func TestCertifiedAttestationSentOnce(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	first := decodeAll(t, e.Ready().Messages)
	if len(first) != 2 || first[0].kind != kindAttest || first[1].kind != kindUpdate {
		t.Fatalf("first message to c = %+v, want attest then update", first)
	}
	e.Tick(ct0.Add(5 * time.Second)) // periodic refresh
	for _, en := range decodeAll(t, e.Ready().Messages) {
		if en.kind == kindAttest {
			t.Fatalf("attestation resent in the first periodic refresh: %+v", en)
		}
	}
}

func decodeAll(t *testing.T, ms []Message) []entry {
	t.Helper()
	var out []entry
	for _, m := range ms {
		es, err := decodeMessage(m.Payload, maxEntriesLimit)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
	}
	return out
}

// Engines sharing a Certifier check an attestation once between them; a
// different attestation, another Certifier or a later time is checked
// again, and a forgery is never taken from the cache.
func TestVerdictsSharedBetweenEngines(t *testing.T) {
	c := &fakeCertifier{}
	engines := make([]*Engine, 3)
	for i := range engines {
		engines[i] = certEngine(t, c)
		engines[i].LinkUp(ct0, "c", 10, false)
	}
	for _, e := range engines {
		recvEntries(t, e, "c", att("b", 3, "att:b/3"), upd("b", 3, 10))
		if _, ok := e.Lookup("b"); !ok {
			t.Fatal("b not accepted")
		}
	}
	if c.verified != 1 {
		t.Fatalf("3 engines sharing a certifier verified %d times, want 1", c.verified)
	}
	if got := engines[2].Stats().CachedVerdicts; got != 1 {
		t.Fatalf("CachedVerdicts = %d, want 1", got)
	}
	// A forged attestation of a newer seqno is checked (and fails) each
	// time, however often it is sent.
	for range 2 {
		recvEntries(t, engines[0], "c", att("b", 4, "att:b/3"))
	}
	if c.verified != 3 || engines[0].Stats().BadAttestations != 2 {
		t.Fatalf("forgery: verified %d, bad %d; want 3 and 2", c.verified, engines[0].Stats().BadAttestations)
	}
	// Another certifier does not see this one's verdicts.
	other := &fakeCertifier{}
	e := certEngine(t, other)
	e.LinkUp(ct0, "c", 10, false)
	recvEntries(t, e, "c", att("b", 3, "att:b/3"))
	if other.verified != 1 {
		t.Fatalf("a second certifier reused another's verdict (verified %d)", other.verified)
	}
	// Verdicts are not reused after a minute.
	late := certEngine(t, c)
	late.LinkUp(ct0.Add(2*time.Minute), "c", 10, false)
	if err := late.Receive(ct0.Add(2*time.Minute), "c", encodeMessage([]entry{att("b", 3, "att:b/3")})); err != nil {
		t.Fatal(err)
	}
	if c.verified != 4 {
		t.Fatalf("verdict reused after two minutes (verified %d, want 4)", c.verified)
	}
}

// Verdicts are kept with the copies engines hold, not beyond: checking
// large attestations that no engine keeps (as a certificate holder issuing
// ever-new seqnos could make every node do) leaves the table with a
// bounded number of entries and holds none of the attestations.
func TestVerdictsOfDroppedAttestationsHoldNothing(t *testing.T) {
	tab := newAttTable()
	c := &fakeCertifier{}
	body := make([]byte, 1700)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var k []byte
	for i := range 20 * attSweepMin {
		k = attKey(k, fmt.Sprintf("origin-%d", i), uint16(i), body)
		if tab.intern(k, 0, c, ct0) == nil {
			t.Fatal("no copy")
		}
		if i%attSweepMin == 0 {
			runtime.GC()
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d entries after %d verdicts of %d-byte attestations hold %d KiB", tab.len(), 20*attSweepMin, len(body), held>>10)
	if n := tab.len(); n > 2*attSweepMin+1 {
		t.Fatalf("the table holds %d entries, none of them held by an engine", n)
	}
	if limit := int64(2*attSweepMin+1) * 256; held > limit {
		t.Fatalf("%d entries hold %d bytes, want at most %d", tab.len(), held, limit)
	}
	runtime.KeepAlive(tab)
}

// A verdict is given only to the Certifier that reached it, within
// verifyCacheTTL, and only for the exact attestation it checked.
func TestVerdictIsForItsCertifierAndContent(t *testing.T) {
	tab := newAttTable()
	c, other := &fakeCertifier{}, &fakeCertifier{}
	k := attKey(nil, "b", 3, []byte("att:b/3"))
	a := tab.intern(k, 0, c, ct0)
	if a.origin != "b" || a.att != "att:b/3" {
		t.Fatalf("copy holds origin %q, attestation %q", a.origin, a.att)
	}
	if got := tab.verdict(k, c, ct0.Add(time.Second)); got != a {
		t.Fatalf("verdict of its certifier: %v, want the shared copy", got)
	}
	for _, tc := range []struct {
		name string
		k    []byte
		c    Certifier
		at   time.Time
	}{
		{"another certifier", k, other, ct0},
		{"no certifier", k, nil, ct0},
		{"after the TTL", k, c, ct0.Add(verifyCacheTTL)},
		{"before the TTL", k, c, ct0.Add(-verifyCacheTTL)},
		{"another seqno", attKey(nil, "b", 4, []byte("att:b/3")), c, ct0},
		{"another origin", attKey(nil, "c", 3, []byte("att:b/3")), c, ct0},
		{"another attestation", attKey(nil, "b", 3, []byte("att:b/4")), c, ct0},
		{"a longer attestation", attKey(nil, "b", 3, []byte("att:b/3x")), c, ct0},
	} {
		if got := tab.verdict(tc.k, tc.c, tc.at); got != nil {
			t.Errorf("%s: got a verdict", tc.name)
		}
	}
	// Another attestation whose hash collides with a's finds a's entry,
	// and neither its verdict nor its copy.
	forged := attKey(nil, "b", 3, []byte("forged!"))
	tab.m[maphash.Bytes(tab.seed, forged)] = tab.m[maphash.Bytes(tab.seed, k)]
	if got := tab.verdict(forged, c, ct0); got != nil {
		t.Fatal("a colliding attestation took the verdict of another")
	}
	if got := tab.intern(forged, 0, nil, ct0); got == a || got.att != "forged!" {
		t.Fatalf("a colliding attestation got the copy %q", got.att)
	}
	runtime.KeepAlive(a)
}

// Engines with certifiers of their own (the nodes of a simulation) that
// receive the same attestation, each in a message of its own, hold one
// copy of it between them, and the copy goes when the engines do.
func TestAttestationSharedAcrossCertifiers(t *testing.T) {
	const origin, body = "shared-b", "att:shared-b/3"
	engines := make([]*Engine, 3)
	for i := range engines {
		engines[i] = certEngine(t, &fakeCertifier{})
		engines[i].LinkUp(ct0, "c", 10, false)
		recvEntries(t, engines[i], "c", att(origin, 3, body), upd(origin, 3, 10))
	}
	var held []*attestation
	for i, e := range engines {
		o := e.origins.get(origin)
		if o == nil || !o.attValid {
			t.Fatalf("engine %d did not accept %s", i, origin)
		}
		held = append(held, e.attOf(o))
	}
	for i, a := range held[1:] {
		if a != held[0] || unsafe.StringData(a.att) != unsafe.StringData(held[0].att) {
			t.Fatalf("engine %d holds its own copy of the attestation", i+1)
		}
	}
	w := weak.Make(held[0])
	held, engines = nil, nil
	for range 100 {
		runtime.GC()
		if w.Value() == nil {
			return
		}
	}
	t.Fatal("the shared copy outlived the engines that held it")
}

// The table of shared copies keeps none alive and sweeps the entries of
// freed ones: however many attestations pass through a process, it holds
// at most about twice as many entries as there are live copies.
func TestAttestationTableBounded(t *testing.T) {
	tab := newAttTable()
	keep := make([]*attestation, 0, 100)
	for i := range 20 * attSweepMin {
		b := fmt.Appendf(nil, "att:o%d/1", i)
		a := tab.intern(attKey(nil, fmt.Sprint("o", i), 1, b), 0, nil, ct0)
		if i%(20*attSweepMin/100) == 0 {
			keep = append(keep, a)
		}
		if i%attSweepMin == 0 {
			runtime.GC()
		}
	}
	if n := tab.len(); n > 2*attSweepMin+len(keep) {
		t.Fatalf("the table holds %d entries for %d live copies", n, len(keep))
	}
	for i, a := range keep {
		if got := tab.intern(attKey(nil, a.origin, 1, []byte(a.att)), 0, nil, ct0); got != a {
			t.Fatalf("live copy %d (%s) not shared after sweeps", i, a.origin)
		}
	}
}

// Stats count the attestations an engine sends and those it receives
// while holding them already.
func TestStatsCountAttestations(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "b", 10, false)
	e.LinkUp(ct0, "c", 10, false)
	e.LinkUp(ct0, "d", 10, false) // sends nothing: it lacks x's attestation
	e.Ready()
	recvEntries(t, e, "b", att("x", 1, "att:x/1"), upd("x", 1, 20))
	if s := e.Stats(); s.AttestationsHeld != 0 {
		t.Fatalf("AttestationsHeld = %d after a new attestation, want 0", s.AttestationsHeld)
	}
	recvEntries(t, e, "c", att("x", 1, "att:x/1"), upd("x", 1, 30))
	if s := e.Stats(); s.AttestationsHeld != 1 {
		t.Fatalf("AttestationsHeld = %d after the same attestation again, want 1", s.AttestationsHeld)
	}
	out0 := e.Stats().AttestationsOut
	e.Tick(ct0.Add(time.Second))
	sent := 0
	for _, m := range e.Ready().Messages {
		es, err := decodeMessage(m.Payload, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range es {
			if en.kind == kindAttest {
				sent++
			}
		}
	}
	if got := e.Stats().AttestationsOut - out0; got != uint64(sent) || sent == 0 {
		t.Fatalf("AttestationsOut grew by %d, %d attestations sent", got, sent)
	}
}
