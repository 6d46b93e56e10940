package routing

import (
	"errors"
	"testing"
	"time"
)

// The engines of a process decode into buffers they share (recvScratch):
// a message one engine refuses halfway, or one it takes, leaves nothing
// that another engine's next message could carry, and each engine's
// table holds only what its own neighbours sent it.
func TestSharedScratchCarriesNothingBetweenEngines(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	newEngine := func(self string) *Engine {
		e, err := New(Config{Self: self, Hysteresis: NoHysteresis})
		if err != nil {
			t.Fatal(err)
		}
		e.LinkUp(now, "n", 10, false)
		return e
	}
	a, b := newEngine("a"), newEngine("b")
	refused := encodeMessage([]entry{
		{kind: kindAttest, origin: "x", seqno: 1, att: []byte("sig")},
		{kind: kindUpdate, origin: "x", seqno: 1, metric: 10, hops: 1},
		{kind: kindUpdate, origin: "y", seqno: 1, metric: 20, hops: 1},
	})
	refused = refused[:len(refused)-1] // the last entry is cut short
	// As long as the refused one, so that the buffer a's message is
	// decoded into is one b's messages used.
	taken := encodeMessage([]entry{
		{kind: kindUpdate, origin: "x", seqno: 1, metric: 30, hops: 2},
		{kind: kindUpdate, origin: "v", seqno: 1, metric: 30, hops: 2},
		{kind: kindUpdate, origin: "w", seqno: 1, metric: 30, hops: 2},
	})
	zero := func(when string) {
		t.Helper()
		p := recvScratch.Get().(*[]entry)
		defer recvScratch.Put(p)
		for i, en := range (*p)[:cap(*p)] {
			if en.kind != 0 || en.origin != "" || en.att != nil || en.org != nil || en.metric != 0 || en.seqno != 0 {
				t.Fatalf("after %s, the shared buffer's entry %d is %+v", when, i, en)
			}
		}
	}
	for round := range 3 {
		now = now.Add(time.Second)
		if err := b.Receive(now, "n", taken); err != nil {
			t.Fatalf("round %d: b: %v", round, err)
		}
		zero("b took a message")
		if err := a.Receive(now, "n", refused); !errors.Is(err, ErrMalformed) {
			t.Fatalf("round %d: a took the cut message: %v", round, err)
		}
		zero("a refused a message")
		if err := b.Receive(now, "n", taken); err != nil {
			t.Fatalf("round %d: b: %v", round, err)
		}
		zero("b took a message")
		if r, ok := b.Lookup("x"); !ok || !r.Reachable || r.Metric != 40 || r.NextHop != "n" {
			t.Fatalf("round %d: b's route to x is %+v (%v), want metric 40 through n", round, r, ok)
		}
		if r, ok := b.Lookup("y"); ok && r.Reachable {
			t.Fatalf("round %d: b has a route to y, which only a's refused message named", round)
		}
		for _, d := range []string{"x", "y"} {
			if r, ok := a.Lookup(d); ok && r.Reachable {
				t.Fatalf("round %d: a has a route to %s from a refused message: %+v", round, d, r)
			}
		}
	}
}
