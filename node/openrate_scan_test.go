package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestOpenBudgetFullTableNotScannedPerOpen: sources keep d's table of
// budgets full (4,096 sources, each with 64 refusals charged, so that
// none is full again for a second at 64 a second), and then 10,000 opens
// of new sources are refused over the next half second. None of those
// finds room, and none may cost a pass over the whole table under the
// budget's lock, which every open's check takes: at most one pass until
// a bucket can be full again. Before, each of the 10,000 looked at all
// 4,096 buckets (40,960,000 in all).
func TestOpenBudgetFullTableNotScannedPerOpen(t *testing.T) {
	ob := newOpenBudget(Limits{MaxCircuitsPerSource: 1024}, testLogger(t))
	now := time.Now()
	for i := range maxRefusalSources {
		charges(ob, &circuit.Open{Source: fmt.Sprintf("s%d", i), Dest: "d"}, 64, now)
	}
	ob.bySource.scanned = 0
	const opens = 10_000
	start := time.Now()
	for i := range opens {
		at := now.Add(time.Duration(i) * 50 * time.Microsecond)
		charges(ob, &circuit.Open{Source: fmt.Sprintf("new%d", i), Dest: "d"}, 1, at)
	}
	took := time.Since(start)
	s, _ := ob.sizes()
	t.Logf("%d new sources charged against a full table: %d buckets looked at, %v (%v an open; not asserted), table %d", opens, ob.bySource.scanned, took.Round(time.Millisecond), took/opens, s)
	if s != maxRefusalSources {
		t.Fatalf("table holds %d sources, want %d", s, maxRefusalSources)
	}
	if ob.bySource.scanned > maxRefusalSources {
		t.Errorf("%d buckets looked at for %d opens, want at most one pass (%d)", ob.bySource.scanned, opens, maxRefusalSources)
	}
	// Once the first buckets are full again, a new source finds room.
	later := now.Add(time.Second + time.Millisecond)
	charges(ob, &circuit.Open{Source: "late", Dest: "d"}, 1, later)
	if ob.bySource.m[reclaimSource(&circuit.Open{Source: "late", Dest: "d"})] == nil {
		t.Error("a new source found no room after the table's buckets were full again")
	}
}
