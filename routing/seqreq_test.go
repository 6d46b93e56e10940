package routing

import (
	"fmt"
	"testing"
	"time"
)

// A neighbour, even a leaf, that asks every millisecond for every origin
// with a seqno we already hold draws at most one update per origin per
// MinTriggeredInterval, not one per request.
func TestRequestFloodBounded(t *testing.T) {
	const origins = 50
	e := floodEngine(t, origins)
	now := ct0.Add(time.Millisecond)
	e.Tick(now)
	e.Ready()

	var updates, bytes int
	const rounds = 1000
	for range rounds {
		now = now.Add(time.Millisecond)
		req := []entry{{kind: kindRequest, origin: "a", seqno: 0, hopcnt: 5}}
		for j := range origins {
			req = append(req, entry{kind: kindRequest, origin: fmt.Sprintf("o%03d", j), seqno: 1, hopcnt: 5})
		}
		for len(req) > 0 {
			n := min(len(req), DefaultMaxRoutesPerMessage)
			if err := e.Receive(now, "m", encodeMessage(req[:n])); err != nil {
				t.Fatal(err)
			}
			req = req[n:]
		}
		e.Tick(now)
		for _, m := range e.Ready().Messages {
			if m.To != "m" {
				continue
			}
			bytes += len(m.Payload)
			for _, en := range decodeAll(t, []Message{m}) {
				if en.kind == kindUpdate {
					updates++
				}
			}
		}
	}
	// One second holds 1s/MinTriggeredInterval intervals; a periodic
	// refresh may add one more table.
	per := int(time.Second/DefaultMinTriggeredInterval) + 2
	limit := per * (origins + 2)
	t.Logf("%d request floods in 1s: %d bytes, %d updates to m (table: %d routes, limit %d)", rounds, bytes, updates, origins+2, limit)
	if updates > limit {
		t.Fatalf("flooding seqno requests drew %d updates in one second, want at most %d", updates, limit)
	}
	if updates < origins {
		t.Fatalf("requests were not answered at all: %d updates", updates)
	}
	if st := e.Stats(); st.RefusedRequests == 0 {
		t.Fatal("no request refused")
	}
}
