package routing

import (
	"fmt"
	"testing"
	"time"
)

// TestSummariesOneSetPerInterval: a neighbour's summaries are taken as
// one set per half update interval, of one bucket count, with no more
// entries than buckets and no more messages than the set needs: a
// neighbour naming every bucket count in one message, or sending a set
// again and again, draws no more table walks or resend requests than an
// honest one.
func TestSummariesOneSetPerInterval(t *testing.T) {
	e, all := summaryRig(t)
	resends := func(at time.Time) int {
		e.Tick(at)
		n := 0
		for _, en := range sent(t, e.Ready(), "m") {
			if en.kind == kindResend {
				n++
			}
		}
		return n
	}
	// Every bucket count at once: only the first count is taken.
	at := t0.Add(time.Second)
	mustReceive(t, e, at, "m", encodeMessage(all))
	if n, refused := resends(at), e.Stats().RefusedSummaries; n != 1 || refused != uint64(len(all)-1) {
		t.Fatalf("one message naming %d bucket counts drew %d resend requests and %d refusals, want 1 and %d", len(all), n, refused, len(all)-1)
	}
	// The same set again within the half interval: refused.
	at = at.Add(DefaultUpdateInterval/2 - time.Millisecond)
	mustReceive(t, e, at, "m", encodeMessage(all[:1]))
	if n := resends(at); n != 0 {
		t.Fatalf("a second set within half an update interval drew %d resend requests", n)
	}
	// A set of 8 buckets in messages of one entry: two messages are taken
	// (8 entries need one message of 16, plus one), the rest refused.
	at = at.Add(time.Millisecond)
	for i := range uint16(8) {
		mustReceive(t, e, at, "m", encodeMessage([]entry{summary(8, i)}))
	}
	if n := resends(at); n != 2 {
		t.Fatalf("8 messages of one summary each drew %d resend requests, want 2", n)
	}
	// An honest set of 8 buckets in one message, in the next window: all
	// of it is checked (none matches what m sent, so each is asked again).
	at = at.Add(DefaultUpdateInterval / 2)
	set := make([]entry, 8)
	for i := range set {
		set[i] = summary(8, uint16(i))
	}
	mustReceive(t, e, at, "m", encodeMessage(set))
	if n := resends(at); n != 8 {
		t.Fatalf("an honest set of 8 buckets drew %d resend requests, want 8", n)
	}
}

// summaryRig is an engine holding 200 routes from its neighbour m, and a
// message's worth of m's summaries naming every bucket count.
func summaryRig(t *testing.T) (*Engine, []entry) {
	t.Helper()
	e := newEngine(t, Config{})
	e.LinkUp(t0, "m", 10, false)
	for i := range 200 {
		mustReceive(t, e, t0, "m", update(fmt.Sprintf("o%03d", i), 1, 10))
	}
	e.Tick(t0)
	e.Ready()
	var all []entry
	for b := uint16(1); b <= maxBuckets; b *= 2 {
		all = append(all, summary(b, 0))
	}
	return e, all
}

func summary(buckets, bucket uint16) entry {
	return entry{kind: kindSummary, buckets: buckets, bucket: bucket, count: 7, digest: 0xdead}
}
