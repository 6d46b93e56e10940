package routing

import (
	"fmt"
	"testing"
	"time"
)

// TestOwnSeqnoFloodChecksBounded: a neighbour with a valid certificate
// signs ever newer seqnos of its own name and sends them 64 to a message
// every 20 ms for 5 s. Each was newer than the last and checked in full
// (16,000 checks). Now only the newest of a message is checked, and at
// most checkRate a second with a burst of checkBurst; the newest checked
// is held.
func TestOwnSeqnoFloodChecksBounded(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "m", 10, false)
	const span = 5 * time.Second
	s := uint16(1000)
	var last uint16
	for at := ct0; at.Sub(ct0) < span; at = at.Add(20 * time.Millisecond) {
		batch := make([]entry, 0, DefaultMaxRoutesPerMessage)
		for range DefaultMaxRoutesPerMessage {
			s++
			batch = append(batch, att("m", s, attOf("m", s)))
		}
		before := c.verified
		mustReceive(t, e, at, "m", encodeMessage(batch))
		if d := c.verified - before; d > 1 {
			t.Fatalf("one message of %d attestations of m cost %d checks, want at most 1", len(batch), d)
		}
		if c.verified > before {
			last = s
		}
	}
	if limit := int(checkBurst + checkRate*span.Seconds()); c.verified > limit {
		t.Fatalf("one neighbour made us check %d attestations of its own name in %v, want at most %d", c.verified, span, limit)
	}
	if got, _, ok := e.Attestation("m"); !ok || got != last {
		t.Fatalf("attestation of m held at seqno %d (%v), want %d, the newest checked", got, ok, last)
	}
	if e.Stats().ThrottledAttestations == 0 {
		t.Fatal("no attestation dropped over budget")
	}
}

// TestReplayedOriginsChecksBounded: a neighbour that collected newer
// attestations of many origins we hold replays them, one per origin and
// message; the per-origin budget would allow each origin checkRate a
// second, but all together draw at most nbCheckRate a second from one
// neighbour, after a burst of one per origin held. Another neighbour's
// attestations are still checked.
func TestReplayedOriginsChecksBounded(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	e.LinkUp(ct0, "m", 10, false)
	const origins = 1000
	names := make([]string, origins)
	for i := range names {
		names[i] = fmt.Sprintf("o%d", i)
		recvEntries(t, e, "c", att(names[i], 1, attOf(names[i], 1)), upd(names[i], 1, 10))
	}
	// New origins are bounded by MaxRoutes, not by this budget.
	if c.verified != origins {
		t.Fatalf("%d origins new to the table cost %d checks, want one each", origins, c.verified)
	}
	before := c.verified
	const span = 2 * time.Second
	at := ct0
	for seq := uint16(2); at.Sub(ct0) < span; seq++ {
		for i := 0; i < origins; i += DefaultMaxRoutesPerMessage {
			batch := make([]entry, 0, DefaultMaxRoutesPerMessage)
			for _, n := range names[i:min(origins, i+DefaultMaxRoutesPerMessage)] {
				batch = append(batch, att(n, seq, attOf(n, seq)))
			}
			mustReceive(t, e, at, "m", encodeMessage(batch))
		}
		at = at.Add(100 * time.Millisecond)
	}
	checked := c.verified - before
	if limit := int(max(nbCheckBurst, float64(e.Stats().Destinations)) + nbCheckRate*span.Seconds()); checked > limit {
		t.Fatalf("one neighbour made us check %d attestations of %d origins in %v, want at most %d", checked, origins, span, limit)
	}
	// The budget is m's: c's newer attestation of an origin is checked.
	before = c.verified
	mustReceive(t, e, at, "c", encodeMessage([]entry{att(names[origins-1], 500, attOf(names[origins-1], 500)), upd(names[origins-1], 500, 10)}))
	if c.verified != before+1 {
		t.Fatal("another neighbour's newer attestation was not checked")
	}
	if r, ok := e.Lookup(names[origins-1]); !ok || r.Seqno != 500 {
		t.Fatalf("route to %s = %+v, want seqno 500 via c", names[origins-1], r)
	}
}

// TestHonestSeqnosWithinCheckBudget: an honest origin's new seqnos (a
// burst at start and restart, then one a second) are all checked and
// their updates accepted, through one neighbour, for a minute.
func TestHonestSeqnosWithinCheckBudget(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	send := func(at time.Time, s uint16) {
		t.Helper()
		mustReceive(t, e, at, "c", encodeMessage([]entry{att("b", s, attOf("b", s)), upd("b", s, 10)}))
		if r, ok := e.Lookup("b"); !ok || r.Seqno != s {
			t.Fatalf("at %v: route to b = %+v (%v), want seqno %d", at.Sub(ct0), r, ok, s)
		}
	}
	s := uint16(7)
	at := ct0
	for range 5 { // start, restart: several seqnos within 100 ms
		s += 3
		send(at, s)
		at = at.Add(20 * time.Millisecond)
	}
	for range 60 {
		at = at.Add(time.Second)
		s++
		send(at, s)
	}
	if n := e.Stats().ThrottledAttestations; n != 0 {
		t.Fatalf("%d of an honest origin's attestations dropped", n)
	}
}

// TestSupersededAttestationsUnchecked: of several attestations of one
// origin in a message, only the newest is checked, whatever their order.
func TestSupersededAttestationsUnchecked(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	recvEntries(t, e, "c",
		att("b", 5, attOf("b", 5)), att("b", 9, attOf("b", 9)), att("x", 2, attOf("x", 2)),
		att("b", 7, attOf("b", 7)), att("b", 9, attOf("b", 9)), upd("b", 9, 10))
	if c.verified != 2 {
		t.Fatalf("%d checks for b's newest and x's, want 2", c.verified)
	}
	if r, ok := e.Lookup("b"); !ok || r.Seqno != 9 {
		t.Fatalf("route to b = %+v (%v), want seqno 9", r, ok)
	}
	// Seqnos round the circle, each "newer" than the one before: one of
	// them is checked.
	var round []entry
	for s := range 8 {
		seq := uint16(s * 8192)
		round = append(round, att("y", seq, attOf("y", seq)))
	}
	before := c.verified
	recvEntries(t, e, "c", round...)
	if n := c.verified - before; n != 1 {
		t.Fatalf("%d checks for 8 attestations of y round the seqno circle, want 1", n)
	}
}

// TestHealBringsEveryNewerSeqno: after a partition heals, a neighbour
// brings a newer seqno of every origin of the other side at once; each is
// checked and its update accepted, more than nbCheckBurst of them.
func TestHealBringsEveryNewerSeqno(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	const origins = 4 * nbCheckBurst
	names := make([]string, origins)
	for i := range names {
		names[i] = fmt.Sprintf("o%d", i)
		recvEntries(t, e, "c", att(names[i], 1, attOf(names[i], 1)), upd(names[i], 1, 10))
	}
	at := ct0.Add(time.Minute)
	for i := 0; i < origins; i += DefaultMaxRoutesPerMessage / 2 {
		var batch []entry
		for _, n := range names[i:min(origins, i+DefaultMaxRoutesPerMessage/2)] {
			batch = append(batch, att(n, 9, attOf(n, 9)), upd(n, 9, 10))
		}
		mustReceive(t, e, at, "c", encodeMessage(batch))
	}
	for _, n := range names {
		if r, ok := e.Lookup(n); !ok || r.Seqno != 9 {
			t.Fatalf("route to %s = %+v (%v), want seqno 9", n, r, ok)
		}
	}
}

// TestUncheckedSeqnoRenewsCheckedRoute: updates at a seqno no checked
// attestation covers (their attestations lost or dropped over budget)
// keep the sender's route alive at the seqno checked before, with the
// metric they carry, past the route expiry; they never install the
// unchecked seqno, and from a neighbour with no route to the origin they
// add none.
func TestUncheckedSeqnoRenewsCheckedRoute(t *testing.T) {
	c := &fakeCertifier{}
	e := certEngine(t, c)
	e.LinkUp(ct0, "c", 10, false)
	e.LinkUp(ct0, "m", 10, false)
	mustReceive(t, e, ct0, "c", encodeMessage([]entry{att("b", 5, attOf("b", 5)), upd("b", 5, 30)}))
	expiry := e.Config().RouteExpiry
	at := ct0
	for i := range 3 {
		at = at.Add(expiry / 2)
		e.Tick(at)
		mustReceive(t, e, at, "c", encodeMessage([]entry{upd("b", 9+uint16(i), 20+Metric(i))}))
		mustReceive(t, e, at, "m", encodeMessage([]entry{upd("b", 9+uint16(i), 11)}))
		e.Tick(at)
		r, ok := e.Lookup("b")
		if !ok || r.NextHop != "c" || r.Seqno != 5 || r.Metric != 30+Metric(i) {
			t.Fatalf("after %v: route to b = %+v (%v), want via c at seqno 5, metric %d", at.Sub(ct0), r, ok, 30+i)
		}
		if hops := e.NextHops("b"); len(hops) != 1 {
			t.Fatalf("after %v: next hops to b %v, want c only", at.Sub(ct0), hops)
		}
	}
	if s, _, _ := e.Attestation("b"); s != 5 {
		t.Fatalf("attestation of b at seqno %d, want 5", s)
	}
	// Without updates, the route expires.
	at = at.Add(expiry + time.Second)
	e.Tick(at)
	if r, ok := e.Lookup("b"); ok {
		t.Fatalf("route to b = %+v, want expired", r)
	}
}
