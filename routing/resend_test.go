package routing

import (
	"fmt"
	"testing"
	"time"
)

// A neighbour, even a leaf, that floods resend requests gets at most one
// copy of our table per summary we send it, at the triggered-update pace,
// however many it sends and whatever bucket count it names.
func TestResendFloodBounded(t *testing.T) {
	const origins = 200
	e := floodEngine(t, origins)
	e.Tick(ct0.Add(time.Millisecond))
	var full int
	for _, en := range decodeAll(t, e.Ready().Messages) {
		if en.kind == kindAttest {
			full++
		}
	}
	if full < origins {
		t.Fatalf("first dump carried %d attestations, want at least %d", full, origins)
	}
	// A periodic summary goes to m: learn its bucket count.
	now := ct0.Add(DefaultUpdateInterval + time.Millisecond)
	e.Tick(now)
	var buckets uint16
	for _, m := range e.Ready().Messages {
		if m.To != "m" {
			continue
		}
		es, err := decodeMessage(m.Payload, maxEntriesLimit)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range es {
			if en.kind == kindSummary {
				buckets = en.buckets
			}
		}
	}
	if buckets < 2 {
		t.Fatalf("summary to m has %d buckets, want several for %d routes", buckets, origins)
	}

	// For one second (less than UpdateInterval), m asks every millisecond
	// for the whole table (one bucket) and for every bucket of the real
	// summary.
	var attests, updates, bytes int
	for i := range 1000 {
		now = now.Add(time.Millisecond)
		req := []entry{{kind: kindResend, buckets: 1, bucket: 0}}
		for b := range buckets {
			if len(req) < DefaultMaxRoutesPerMessage {
				req = append(req, entry{kind: kindResend, buckets: buckets, bucket: (b + uint16(i)) % buckets})
			}
		}
		if err := e.Receive(now, "m", encodeMessage(req)); err != nil {
			t.Fatal(err)
		}
		e.Tick(now)
		for _, m := range e.Ready().Messages {
			if m.To != "m" {
				continue
			}
			bytes += len(m.Payload)
			es, err := decodeMessage(m.Payload, maxEntriesLimit)
			if err != nil {
				t.Fatal(err)
			}
			for _, en := range es {
				switch en.kind {
				case kindAttest:
					attests++
				case kindUpdate:
					updates++
				}
			}
		}
	}
	t.Logf("1000 resend floods in 1s: %d bytes, %d updates, %d attestations to m (table: %d routes)", bytes, updates, attests, origins+2)
	if attests > origins+2 || updates > origins+2 {
		t.Fatalf("flooding resend requests drew %d attestations and %d updates in one second, want at most one table (%d)", attests, updates, origins+2)
	}
	if attests < origins {
		t.Fatalf("the requested buckets were not answered once: %d attestations", attests)
	}
	if st := e.Stats(); st.RefusedResends == 0 {
		t.Fatal("no resend request refused")
	}
}

// floodEngine returns engine a learning origins o000.. (seqno 1, attested)
// from neighbour b, with a leaf neighbour m (the attacker) linked after.
func floodEngine(t *testing.T, origins int) *Engine {
	t.Helper()
	e := certEngine(t, &fakeCertifier{})
	e.LinkUp(ct0, "b", 10, false)
	for i := range origins {
		name := fmt.Sprintf("o%03d", i)
		recvEntries(t, e, "b", att(name, 1, fmt.Sprintf("att:%s/1", name)), upd(name, 1, 10))
	}
	e.LinkUp(ct0, "m", 10, true)
	return e
}
