package routing

import (
	"fmt"
	"testing"
	"time"
)

// A whole table beyond the budget goes to a new neighbour in windows of
// MinTriggeredInterval, each within Config.MaxBurstBytes (and 64
// messages), every route once, the summary only after the last: and a
// caller that ticks at NextTick never finds a tick with nothing to send,
// so it does not spin.
func TestWholeTablePacedByWindow(t *testing.T) {
	const origins, budget = 300, 2 << 10
	e, err := New(Config{Self: "a", Certifier: &fakeCertifier{}, MaxBurstBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	e.LinkUp(ct0, "b", 10, false)
	for i := range origins {
		name := fmt.Sprintf("o%03d", i)
		recvEntries(t, e, "b", att(name, 1, fmt.Sprintf("att:%s/1", name)), upd(name, 1, 10))
	}
	e.Tick(ct0)
	e.Ready()
	now := ct0.Add(time.Second)
	e.LinkUp(now, "m", 10, false)
	seen := make(map[string]int)
	windows, summaries := 0, 0
	last := now
	for ; windows < 1000; windows++ {
		var bytes, msgs int
		for _, m := range e.Ready().Messages {
			if m.To != "m" {
				continue
			}
			bytes += len(m.Payload)
			msgs++
			for _, en := range decodeAll(t, []Message{m}) {
				switch en.kind {
				case kindUpdate:
					if summaries > 0 {
						t.Fatalf("update for %s after the summary", en.origin)
					}
					seen[en.origin]++
				case kindSummary:
					summaries++
				}
			}
		}
		if msgs == 0 && e.Pending() {
			t.Fatalf("window %d at %v: nothing sent while updates are pending", windows, now.Sub(ct0))
		}
		if bytes > budget+300 || msgs > maxBurstMessages {
			t.Fatalf("window %d: %d bytes in %d messages, budget %d bytes", windows, bytes, msgs, budget)
		}
		if !e.Pending() && summaries > 0 {
			break
		}
		next := e.NextTick()
		if next.Sub(last) < DefaultMinTriggeredInterval && windows > 0 {
			t.Fatalf("window %d: next tick %v after the last, want at least %v", windows, next.Sub(last), DefaultMinTriggeredInterval)
		}
		last, now = next, next
		e.Tick(now)
	}
	if len(seen) != origins+1 {
		t.Fatalf("m got %d routes, want %d", len(seen), origins+1)
	}
	for o, n := range seen {
		if n != 1 {
			t.Fatalf("m got %s %d times", o, n)
		}
	}
	t.Logf("%d routes in %d windows", len(seen), windows)
	if windows < 3 {
		t.Fatalf("table sent in %d windows, want several for a budget of %d bytes", windows, budget)
	}
}
