package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// spendThroughRelay has member m, a neighbour of relay r, spend all it
// can of d's budgets of refused opens through r at now: its own opens
// (hop 1, path r) until its source's budget is spent, and opens claiming
// made-up sources (hop 2, path m, r), each until its budget is spent,
// until the entry (m, r) is spent. It returns how many refusals it had
// charged.
func spendThroughRelay(ob *openBudget, m string, now time.Time) int {
	n := 0
	own := &circuit.Open{Source: m, Dest: "d", Hop: 1, Path: []string{"r"}}
	for !spentFor(ob, own, now) {
		charges(ob, own, 1, now)
		n++
	}
	for i := 0; ; i++ {
		o := &circuit.Open{Source: fmt.Sprintf("%s-x%d", m, i), Dest: "d", Hop: 2, Path: []string{m, "r"}}
		if spentFor(ob, o, now) {
			return n
		}
		for !spentFor(ob, o, now) {
			charges(ob, o, 1, now)
			n++
		}
	}
}

// TestOpenBudgetMembersBehindARelayLeaveOthersTheirOpens: members behind
// an honest relay r, each spending all it can of d's budgets of refused
// opens through r (its own source's and its entry's), and 1,000 honest
// clients behind r retrying a service of d that went down until each is
// refused at once, never make d refuse at once the opens through r of
// another source: one entering r on a link of its own (hop 1), or through
// another neighbour of r (hop 2). A bucket shared by all the claims r
// relays (32 budgets) was spent by 4 such members, and by 33 retries of
// each of the 1,000 clients; from then on every open through r, to a
// service d has too, was refused at once.
func TestOpenBudgetMembersBehindARelayLeaveOthersTheirOpens(t *testing.T) {
	now := time.Now()
	honest := []*circuit.Open{
		{Source: "h", Dest: "d", Service: EchoService, Hop: 1, Path: []string{"r"}},
		{Source: "y", Dest: "d", Service: EchoService, Hop: 2, Path: []string{"g", "r"}},
	}
	refusedOf := func(ob *openBudget) (n int) {
		for _, o := range honest {
			if spentFor(ob, o, now) {
				n++
			}
		}
		return n
	}
	ob := newOpenBudget(Limits{MaxCircuitsPerSource: 1024}, testLogger(t)) // the defaults: 64 a second, a bucket of 1,024
	total := 0
	for i := range 16 {
		total += spendThroughRelay(ob, fmt.Sprintf("m%d", i), now)
	}
	t.Logf("16 members behind r: %d refusals charged at d", total)
	if n := refusedOf(ob); n != 0 {
		t.Errorf("16 members behind r spending their budgets made d refuse at once %d of %d honest opens through r, want none", n, len(honest))
	}
	ob = newOpenBudget(Limits{MaxCircuitsPerSource: 1024}, testLogger(t))
	for range 1100 { // past each client's own bucket
		for i := range 1000 {
			o := &circuit.Open{Source: fmt.Sprintf("c%d", i), Dest: "d", Service: "gone", Hop: 1, Path: []string{"r"}}
			if !spentFor(ob, o, now) {
				charges(ob, o, 1, now)
			}
		}
	}
	if n := refusedOf(ob); n != 0 {
		t.Errorf("1,000 clients behind r retrying a service that went down made d refuse at once %d of %d other opens through r, want none", n, len(honest))
	}
}
