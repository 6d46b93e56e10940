//go:build !race

package routing

import (
	"testing"
	"time"
)

// TestRefusedSummariesAllocateNothing: a message of summaries refused
// because the neighbour's set for this half interval was taken already
// costs no allocation. (Without the race detector, whose pools drop a
// share of what is put: Receive decodes into a scratch buffer shared by
// the engines of a process through a sync.Pool, so under -race a refused
// message allocates whenever the pool dropped the buffer.)
func TestRefusedSummariesAllocateNothing(t *testing.T) {
	e, all := summaryRig(t)
	at := t0.Add(time.Second)
	msg := encodeMessage(all)
	mustReceive(t, e, at, "m", msg) // the set of this half interval
	before := e.Stats().RefusedSummaries
	const runs = 100
	if a := testing.AllocsPerRun(runs, func() {
		if err := e.Receive(at, "m", msg); err != nil {
			t.Fatal(err)
		}
	}); a > 0 {
		t.Errorf("a refused message of summaries costs %.1f allocations", a)
	}
	// AllocsPerRun calls the function once more to warm up.
	if got, want := e.Stats().RefusedSummaries-before, uint64((runs+1)*len(all)); got != want {
		t.Errorf("the messages measured had %d summaries refused, want all %d", got, want)
	}
}
