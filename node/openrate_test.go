package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// charges spends n refusals of o's budgets at now.
func charges(ob *openBudget, o *circuit.Open, n int, now time.Time) {
	for range n {
		ob.charge(o, reclaimSource(o), now)
	}
}

func spentFor(ob *openBudget, o *circuit.Open, now time.Time) bool {
	return ob.spent(o, reclaimSource(o), now)
}

// TestOpenBudgetBySource: a source's refusals spend its own budget
// only: the source at hop 0, the same name claimed along another path,
// and a forger naming it along its own path each have theirs; a spent
// budget earns its rate back.
func TestOpenBudgetBySource(t *testing.T) {
	ob := newOpenBudget(Limits{RefusedOpensPerSource: 4, MaxCircuitsPerSource: 16}, testLogger(t))
	now := time.Now()
	m0 := &circuit.Open{Source: "m", Dest: "d"}
	h0 := &circuit.Open{Source: "h", Dest: "d"}
	hViaR := &circuit.Open{Source: "h", Dest: "d", Hop: 1, Path: []string{"r"}}
	hForgedByM := &circuit.Open{Source: "h", Dest: "d", Hop: 2, Path: []string{"m", "r"}}

	charges(ob, m0, 15, now)
	if spentFor(ob, m0, now) {
		t.Fatal("m's budget of 16 spent after 15 refusals")
	}
	charges(ob, m0, 1, now)
	if !spentFor(ob, m0, now) {
		t.Fatal("m's budget of 16 not spent after 16 refusals")
	}
	charges(ob, hForgedByM, 16, now)
	if !spentFor(ob, hForgedByM, now) {
		t.Fatal("h as claimed along m, r not spent after 16 refusals")
	}
	for _, o := range []*circuit.Open{h0, hViaR} {
		if spentFor(ob, o, now) {
			t.Errorf("h at hop %d along %q spent by m's and m's forgeries' refusals", o.Hop, o.Path)
		}
	}
	if !spentFor(ob, m0, now.Add(100*time.Millisecond)) {
		t.Error("m's budget earned a refusal in 100 ms at 4 a second")
	}
	if spentFor(ob, m0, now.Add(300*time.Millisecond)) {
		t.Error("m's budget earned no refusal in 300 ms at 4 a second")
	}
	if st := ob.beyond.Load(); st != 3 {
		t.Errorf("%d opens counted beyond the budget, want the 3 refused", st)
	}
}

// TestOpenBudgetByEntry: a router m behind relay r that claims a new
// made-up source for each open (hop 2, path m, r) gets a source budget
// for each, but all its claims share the entry (m, r): once they spent
// eight budgets, every claim entering r from m is refused at once,
// while h's opens at hop 1 through r, and those h relays to r, are not.
func TestOpenBudgetByEntry(t *testing.T) {
	ob := newOpenBudget(Limits{RefusedOpensPerSource: 4, MaxCircuitsPerSource: 16}, testLogger(t))
	now := time.Now()
	minted := func(i int) *circuit.Open {
		return &circuit.Open{Source: fmt.Sprintf("x%d", i), Dest: "d", Hop: 2, Path: []string{"m", "r"}}
	}
	for i := range entryShare * 16 {
		o := minted(i)
		if spentFor(ob, o, now) {
			t.Fatalf("made-up source %d of m refused before the entry's %d", i, entryShare*16)
		}
		charges(ob, o, 1, now)
	}
	if !spentFor(ob, minted(-1), now) {
		t.Fatal("a new made-up source entering r from m not refused after the entry's budget was spent")
	}
	for _, o := range []*circuit.Open{
		{Source: "h", Dest: "d", Hop: 1, Path: []string{"r"}},
		{Source: "y", Dest: "d", Hop: 2, Path: []string{"h", "r"}},
		{Source: "m", Dest: "d", Hop: 1, Path: []string{"r"}},
	} {
		if spentFor(ob, o, now) {
			t.Errorf("%s at hop %d along %q refused by m's made-up sources' budget", o.Source, o.Hop, o.Path)
		}
	}
}

// TestOpenBudgetTableBounded: each table holds at most
// maxRefusalSources buckets; those full again are forgotten for new
// ones, and a key finding none is not counted.
func TestOpenBudgetTableBounded(t *testing.T) {
	ob := newOpenBudget(Limits{RefusedOpensPerSource: 4, MaxCircuitsPerSource: 16}, testLogger(t))
	now := time.Now()
	for i := range maxRefusalSources + 100 {
		charges(ob, &circuit.Open{Source: fmt.Sprintf("s%d", i), Dest: "d", Hop: 2, Path: []string{fmt.Sprintf("p%d", i), "r"}}, 1, now)
	}
	if s, e := ob.sizes(); s != maxRefusalSources || e != maxRefusalSources {
		t.Fatalf("tables hold %d sources and %d entries, want %d each", s, e, maxRefusalSources)
	}
	// A second later every bucket is full again: new keys replace them.
	later := now.Add(time.Second)
	charges(ob, &circuit.Open{Source: "new", Dest: "d"}, 1, later)
	if s, _ := ob.sizes(); s != 1 {
		t.Fatalf("after the buckets refilled the table holds %d sources, want the 1 new", s)
	}
}
