package routing

import (
	"testing"
	"time"
)

// updatesOf returns the updates for origin among es.
func updatesOf(es []entry, origin string) []entry {
	var out []entry
	for _, en := range es {
		if en.kind == kindUpdate && en.origin == origin {
			out = append(out, en)
		}
	}
	return out
}

// relayOfX returns an engine with neighbours b and c that has just
// learned x (seqno 5, metric 20) from b, and the time it did.
func relayOfX(t *testing.T) (*Engine, time.Time) {
	t.Helper()
	e := newEngine(t, Config{Hysteresis: NoHysteresis})
	e.LinkUp(t0, "b", 10, false)
	e.LinkUp(t0, "c", 10, false)
	now := t0.Add(time.Second)
	mustReceive(t, e, now, "b", update("x", 5, 20))
	e.Tick(now)
	return e, now
}

// A new seqno that changes nothing else is not passed on: it answers no
// request of ours, and every bump flooding every node is what made a node
// death cost each node an update per origin. It still reaches a neighbour
// that asks (the reply carries the current seqno), and the next summary
// describes what was sent, so it draws no resend.
func TestSeqnoAloneNotPropagated(t *testing.T) {
	e, now := relayOfX(t)
	if got := updatesOf(sent(t, e.Ready(), "c"), "x"); len(got) != 1 || got[0].seqno != 5 || got[0].metric != 30 {
		t.Fatalf("first route to x sent to c as %+v", got)
	}
	now = now.Add(time.Second)
	mustReceive(t, e, now, "b", update("x", 6, 20))
	e.Tick(now.Add(time.Second))
	if got := updatesOf(sent(t, e.Ready(), "c"), "x"); len(got) != 0 {
		t.Fatalf("seqno 6 alone sent to c: %+v", got)
	}
	if r, _ := e.Lookup("x"); r.Seqno != 6 {
		t.Fatalf("route to x has seqno %d, want 6", r.Seqno)
	}

	// c asks for seqno 6: it gets the current route.
	now = now.Add(2 * time.Second)
	mustReceive(t, e, now, "c", encodeMessage([]entry{{kind: kindRequest, origin: "x", seqno: 6, hopcnt: 5}}))
	e.Tick(now.Add(time.Second))
	if got := updatesOf(sent(t, e.Ready(), "c"), "x"); len(got) != 1 || got[0].seqno != 6 {
		t.Fatalf("request for seqno 6 answered with %+v", got)
	}

	// The summaries match what b and c were told: c, given the updates
	// it was sent, asks for nothing.
	now = now.Add(5 * time.Second)
	e.Tick(now)
	var sums []entry
	for _, en := range sent(t, e.Ready(), "c") {
		if en.kind == kindSummary {
			sums = append(sums, en)
		}
	}
	if len(sums) == 0 {
		t.Fatal("no summary sent to c")
	}
	peer := newEngine(t, Config{Self: "c", Hysteresis: NoHysteresis})
	peer.LinkUp(t0, "a", 10, false)
	mustReceive(t, peer, now, "a", encodeMessage([]entry{
		{kind: kindUpdate, origin: "a", seqno: e.seqno, metric: 0},
		{kind: kindUpdate, origin: "x", seqno: 6, metric: 30, hops: 2},
	}))
	peer.Ready()
	mustReceive(t, peer, now, "a", encodeMessage(sums))
	peer.Tick(now.Add(time.Second))
	for _, en := range sent(t, peer.Ready(), "a") {
		if en.kind == kindResend {
			t.Fatalf("summary of what c holds draws a resend: %+v", en)
		}
	}
}

// A new seqno that answers a request we forwarded goes out at once, to
// every neighbour.
func TestSeqnoAnsweringForwardedRequestSent(t *testing.T) {
	e, now := relayOfX(t)
	e.Ready()
	now = now.Add(time.Second)
	mustReceive(t, e, now, "c", encodeMessage([]entry{{kind: kindRequest, origin: "x", seqno: 6, hopcnt: 5}}))
	fwd := sent(t, e.Ready(), "b")
	if len(fwd) != 1 || fwd[0].kind != kindRequest || fwd[0].seqno != 6 {
		t.Fatalf("request for seqno 6 forwarded to b as %+v", fwd)
	}
	now = now.Add(100 * time.Millisecond)
	mustReceive(t, e, now, "b", update("x", 6, 20))
	e.Tick(now.Add(10 * time.Millisecond))
	if got := updatesOf(sent(t, e.Ready(), "c"), "x"); len(got) != 1 || got[0].seqno != 6 {
		t.Fatalf("answer to the forwarded request sent to c as %+v", got)
	}
}
