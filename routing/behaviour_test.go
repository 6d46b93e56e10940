package routing

import (
	"slices"
	"testing"
	"time"
)

func newEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	if cfg.Self == "" {
		cfg.Self = "a"
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// sent decodes the messages of rd addressed to "to".
func sent(t *testing.T, rd Ready, to string) []entry {
	t.Helper()
	var out []entry
	for _, m := range rd.Messages {
		if m.To != to {
			continue
		}
		es, err := decodeMessage(m.Payload, maxEntriesLimit)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
	}
	return out
}

func update(origin string, seqno uint16, metric Metric) []byte {
	return encodeMessage([]entry{{kind: kindUpdate, origin: origin, seqno: seqno, metric: metric, hops: 1}})
}

// mustReceive delivers p and then, as a caller does, ticks e if NextTick
// says its outputs are due: what Receive causes goes out at that Tick.
func mustReceive(t *testing.T, e *Engine, now time.Time, from string, p []byte) {
	t.Helper()
	if err := e.Receive(now, from, p); err != nil {
		t.Fatal(err)
	}
	if !e.NextTick().After(now) {
		e.Tick(now)
	}
}

func TestTriggeredUpdatesAreRateLimited(t *testing.T) {
	e := newEngine(t, Config{})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	e.Ready()
	now := t0.Add(10 * time.Millisecond)
	mustReceive(t, e, now, "b", update("x", 1, 10))
	mustReceive(t, e, now, "b", update("y", 1, 10))
	if got := sent(t, e.Ready(), "c"); len(got) != 0 {
		t.Fatalf("sent %d updates to c within the rate limit", len(got))
	}
	want := t0.Add(DefaultMinTriggeredInterval)
	if nt := e.NextTick(); !nt.Equal(want) {
		t.Fatalf("NextTick = %v, want %v", nt.Sub(t0), want.Sub(t0))
	}
	e.Tick(want)
	got := sent(t, e.Ready(), "c")
	if len(got) != 2 || got[0].origin != "x" || got[1].origin != "y" || got[0].metric != 20 {
		t.Fatalf("coalesced update to c = %+v, want x and y at metric 20", got)
	}
}

// TestPeriodicRefresh: each update interval a neighbour gets a summary of
// what we advertise to it, not the routes themselves; a summary that does
// not match what we hold from its sender makes us ask for that bucket
// again.
func TestPeriodicRefresh(t *testing.T) {
	e := newEngine(t, Config{UpdateInterval: time.Second})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	mustReceive(t, e, t0, "b", update("x", 1, 10))
	e.Tick(t0.Add(DefaultMinTriggeredInterval))
	e.Ready()
	nt := e.NextTick()
	if d := nt.Sub(t0); d > time.Second || d < 7*time.Second/8 {
		t.Fatalf("first refresh after %v, want within (7/8 s, 1 s]", d)
	}
	e.Tick(nt.Add(-time.Millisecond))
	if len(e.Ready().Messages) != 0 {
		t.Fatal("refresh sent early")
	}
	e.Tick(nt)
	got := sent(t, e.Ready(), "c")
	if len(got) != 1 || got[0].kind != kindSummary || got[0].buckets != 1 || got[0].count != 2 {
		t.Fatalf("refresh to c = %+v, want one summary of 2 routes (a and x)", got)
	}
	// c, holding exactly what we sent, finds the summary matches.
	// (c's own refreshes are not what this test is about.)
	c := newEngine(t, Config{Self: "c", UpdateInterval: time.Hour})
	c.LinkUp(t0, "a", 10, false)
	mustReceive(t, c, t0, "a", encodeMessage([]entry{{kind: kindUpdate, origin: "a", seqno: e.seqno}, {kind: kindUpdate, origin: "x", seqno: 1, metric: 20, hops: 2}}))
	c.Ready()
	mustReceive(t, c, nt, "a", encodeMessage(got))
	if rd := c.Ready(); len(rd.Messages) != 0 {
		t.Fatalf("matching summary answered with %+v", sent(t, rd, "a"))
	}
	// A summary that does not match asks for the bucket again, and the
	// answer carries every route of it.
	// (At c, a later period's: a neighbour gets one set per half of
	// c's update interval.)
	ct := nt.Add(time.Hour)
	mustReceive(t, c, ct, "a", encodeMessage([]entry{{kind: kindUpdate, origin: "x", seqno: 1, metric: DefaultInfinity}}))
	mustReceive(t, c, ct, "a", encodeMessage(got))
	req := sent(t, c.Ready(), "a")
	// (c's own periodic summaries, due at ct, aside.)
	req = slices.DeleteFunc(req, func(en entry) bool { return en.kind == kindSummary })
	if len(req) != 1 || req[0].kind != kindResend || req[0].buckets != 1 {
		t.Fatalf("after a mismatching summary c sent %+v, want a resend request", req)
	}
	mustReceive(t, e, nt, "c", encodeMessage(req))
	// The answer goes at the triggered-update pace, not sooner.
	e.Tick(nt.Add(DefaultMinTriggeredInterval / 10))
	if early := sent(t, e.Ready(), "c"); len(early) != 0 {
		t.Fatalf("resend answered before the triggered-update interval: %+v", early)
	}
	e.Tick(nt.Add(DefaultMinTriggeredInterval))
	resent := sent(t, e.Ready(), "c")
	if len(resent) != 2 || resent[0].origin != "a" || resent[1].origin != "x" || resent[1].metric != 20 {
		t.Fatalf("resent bucket = %+v, want routes to a and x", resent)
	}
}

func TestRouteExpiry(t *testing.T) {
	e := newEngine(t, Config{UpdateInterval: time.Second})
	e.LinkUp(t0, "b", 10, false)
	mustReceive(t, e, t0, "b", update("c", 1, 10))
	e.Ready()
	for now := t0; now.Before(t0.Add(3 * time.Second)); now = now.Add(100 * time.Millisecond) {
		e.Tick(now)
	}
	if _, ok := e.Lookup("c"); !ok {
		t.Fatal("route expired before RouteExpiry")
	}
	e.Ready()
	e.Tick(t0.Add(3600 * time.Millisecond))
	if _, ok := e.Lookup("c"); ok {
		t.Fatal("route not expired after RouteExpiry (3.5 s)")
	}
	if _, ok := e.Lookup("b"); !ok {
		t.Fatal("neighbour's own route expired although the link is up")
	}
	evs := e.Ready().Events
	if len(evs) != 1 || evs[0].Kind != PeerDown || evs[0].Dest != "c" {
		t.Fatalf("events = %+v, want PeerDown c", evs)
	}
}

// TestSeqnoRequest: when the only remaining route is unfeasible, the engine
// withdraws the destination and asks for a newer seqno; the answer
// restores it without waiting for a periodic refresh.
func TestSeqnoRequest(t *testing.T) {
	e := newEngine(t, Config{})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	mustReceive(t, e, t0, "b", update("d", 5, 10))
	e.Tick(t0.Add(DefaultMinTriggeredInterval))    // we advertise d at 20
	mustReceive(t, e, t0, "c", update("d", 5, 50)) // 50 >= 20: unfeasible
	if hops := e.NextHops("d"); len(hops) != 1 || hops[0] != "b" {
		t.Fatalf("NextHops(d) = %v, want [b] (c is unfeasible)", hops)
	}
	e.Ready()
	now := t0.Add(time.Second)
	mustReceive(t, e, now, "b", update("d", 5, DefaultInfinity))
	if _, ok := e.Lookup("d"); ok {
		t.Fatal("d still reachable through an unfeasible route")
	}
	rd := e.Ready()
	var req *entry
	for _, en := range sent(t, rd, "c") {
		if en.kind == kindRequest {
			req = &en
		}
	}
	if req == nil || req.origin != "d" || req.seqno != 6 {
		t.Fatalf("to c: %+v, want a seqno request for d, seqno 6", sent(t, rd, "c"))
	}
	mustReceive(t, e, now, "c", update("d", 6, 50))
	if r, ok := e.Lookup("d"); !ok || r.NextHop != "c" || r.Metric != 60 || r.Seqno != 6 {
		t.Fatalf("after the answer: %+v %v", r, ok)
	}
}

// TestRequestForSelf: a request for a newer seqno of our own makes us
// take it and announce it to every neighbour at once; a request within a
// second of that raises it again only when the second is over; a request
// far ahead moves it by maxSelfJump at most.
func TestRequestForSelf(t *testing.T) {
	e := newEngine(t, Config{})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	e.Ready()
	want := e.seqno + 10
	at := t0.Add(DefaultMinTriggeredInterval / 10)
	mustReceive(t, e, at, "b", encodeMessage([]entry{{kind: kindRequest, origin: "a", seqno: want, hopcnt: 5}}))
	announced := func(want uint16) {
		t.Helper()
		rd := e.Ready()
		for _, to := range []string{"b", "c"} {
			got := sent(t, rd, to)
			if len(got) != 1 || got[0].origin != "a" || got[0].seqno != want {
				t.Fatalf("to %s: %+v, want our route with seqno %d at once", to, got, want)
			}
		}
	}
	announced(want)
	// Asked again at once (an attacker asking as fast as it may): no
	// raise, no signature, until the gap is over.
	gap := 20 * DefaultMinTriggeredInterval
	first := at
	at = at.Add(DefaultMinTriggeredInterval)
	mustReceive(t, e, at, "c", encodeMessage([]entry{{kind: kindRequest, origin: "a", seqno: want + 1, hopcnt: 5}}))
	e.Tick(at)
	if rd := e.Ready(); len(rd.Messages) != 0 || e.seqno != want {
		t.Fatalf("a second request within %v raised our seqno to %d (want %d) or sent %d messages", gap, e.seqno, want, len(rd.Messages))
	}
	if !e.Pending() {
		t.Fatal("the raise a request asked for is not pending")
	}
	next := e.NextTick()
	if d := next.Sub(first); d != gap {
		t.Fatalf("next raise due %v after the first, want %v", d, gap)
	}
	e.Tick(next)
	announced(want + 1)
	// Far ahead: at most maxSelfJump, a gap later.
	at = next.Add(gap)
	mustReceive(t, e, at, "b", encodeMessage([]entry{{kind: kindRequest, origin: "a", seqno: want + 1 + 30000, hopcnt: 5}}))
	announced(want + 1 + maxSelfJump)
	if st := e.Stats(); st.SeqnoBumps != 3 {
		t.Fatalf("SeqnoBumps = %d, want 3", st.SeqnoBumps)
	}
}

// TestRequestForwarded: a request we cannot answer goes to our next hop,
// once, with its hop count decreased.
func TestRequestForwarded(t *testing.T) {
	e := newEngine(t, Config{})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	mustReceive(t, e, t0, "b", update("d", 5, 10))
	e.Ready()
	req := encodeMessage([]entry{{kind: kindRequest, origin: "d", seqno: 6, hopcnt: 5}})
	mustReceive(t, e, t0, "c", req)
	mustReceive(t, e, t0, "c", req)
	got := sent(t, e.Ready(), "b")
	if len(got) != 1 || got[0].kind != kindRequest || got[0].seqno != 6 || got[0].hopcnt != 4 {
		t.Fatalf("to b: %+v, want one forwarded request with hop count 4", got)
	}
	// A request we can satisfy is answered directly.
	mustReceive(t, e, t0.Add(DefaultMinTriggeredInterval/10), "c", encodeMessage([]entry{{kind: kindRequest, origin: "d", seqno: 5, hopcnt: 5}}))
	got = sent(t, e.Ready(), "c")
	if len(got) != 1 || got[0].kind != kindUpdate || got[0].seqno != 5 || got[0].metric != 20 {
		t.Fatalf("to c: %+v, want our route to d", got)
	}
}

// TestRestartedOriginCatchesUp: a node that restarts with a low seqno jumps
// past the seqno the network still holds for it.
func TestRestartedOriginCatchesUp(t *testing.T) {
	e := newEngine(t, Config{})
	e.LinkUp(t0, "b", 10, false)
	e.Ready()
	stale := e.seqno + 100
	mustReceive(t, e, t0, "b", update("a", stale, 10))
	e.Tick(t0.Add(DefaultMinTriggeredInterval))
	got := sent(t, e.Ready(), "b")
	if len(got) != 1 || !seqnoLess(stale, got[0].seqno) {
		t.Fatalf("after seeing seqno %d for ourselves we sent %+v", stale, got)
	}
}

func TestLeafNeighbourIsNotTransit(t *testing.T) {
	e := newEngine(t, Config{})
	e.LinkUp(t0, "l", 10, true)
	mustReceive(t, e, t0, "l", update("x", 1, 10))
	if _, ok := e.Lookup("x"); ok {
		t.Fatal("route through a leaf neighbour accepted")
	}
	if e.Stats().IgnoredFromLeaf != 1 {
		t.Fatalf("IgnoredFromLeaf = %d", e.Stats().IgnoredFromLeaf)
	}
	if _, ok := e.Lookup("l"); !ok {
		t.Fatal("leaf neighbour itself unreachable")
	}
}

func TestLeafEngineSendsOnlyItself(t *testing.T) {
	e := newEngine(t, Config{Leaf: true})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	mustReceive(t, e, t0, "b", update("x", 1, 10))
	e.Tick(t0.Add(10 * time.Second))
	for _, to := range []string{"b", "c"} {
		for _, en := range sent(t, e.Ready(), to) {
			if en.kind != kindSummary && en.origin != "a" {
				t.Fatalf("leaf advertised %q to %s", en.origin, to)
			}
		}
	}
}

func TestOutputQueueBounded(t *testing.T) {
	e := newEngine(t, Config{MaxRoutes: 4, UpdateInterval: time.Second})
	e.LinkUp(t0, "b", 10, false)
	for i := range 20000 {
		e.Tick(t0.Add(time.Duration(i) * time.Second))
	}
	if n := len(e.outbox); n > 1024+(4/64+2)*4 {
		t.Fatalf("outbox holds %d messages", n)
	}
	if e.Stats().DroppedMessages == 0 {
		t.Fatal("overflow not counted")
	}
}

// TestBurstLeavesAsOneBatch: Receive sends nothing itself; NextTick is
// then due at once, and the Tick sends what the whole burst changed, so a
// neighbour hears the best route of the burst, not the first one heard.
func TestBurstLeavesAsOneBatch(t *testing.T) {
	e := newEngine(t, Config{Hysteresis: NoHysteresis})
	for _, nb := range []string{"b", "c", "d"} {
		e.LinkUp(t0, nb, 10, false)
	}
	e.Ready()
	now := t0.Add(time.Second) // past the rate limit of every neighbour
	for _, m := range []struct {
		from   string
		metric Metric
	}{{"b", 100}, {"c", 10}} {
		if err := e.Receive(now, m.from, update("x", 1, m.metric)); err != nil {
			t.Fatal(err)
		}
		if rd := e.Ready(); len(rd.Messages) != 0 {
			t.Fatalf("Receive from %s sent %d messages itself", m.from, len(rd.Messages))
		}
	}
	if nt := e.NextTick(); nt.After(now) {
		t.Fatalf("NextTick %v after the burst, want due at once", nt.Sub(now))
	}
	e.Tick(now)
	got := sent(t, e.Ready(), "d")
	if len(got) != 1 || got[0].origin != "x" || got[0].metric != 20 {
		t.Fatalf("to d: %+v, want one update for x at metric 20 (via c)", got)
	}
}
