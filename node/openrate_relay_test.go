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

// TestOpenBudgetRelayNeighbourSpentByFourMembers measures what
// docs/SECURITY.md says of the bucket of a relaying neighbour: members
// behind an honest relay r, each spending all it can of d's budgets
// through r (its own source's, 1 budget, and its entry's, 8), spend r's
// bucket at d (32 budgets) with 4 certificates, not 32; from then on every
// open through r, an honest source's too (to a service d has: the check
// comes before d looks), is refused at once until r's bucket earns
// tokens back (2,048 a second by default), which the 4 members' buckets
// earn back as fast (4 × 9 × 64 a second). With 3 members it is not spent.
func TestOpenBudgetRelayNeighbourSpentByFourMembers(t *testing.T) {
	now := time.Now()
	honest := []*circuit.Open{
		{Source: "h", Dest: "d", Service: EchoService, Hop: 1, Path: []string{"r"}},
		{Source: "y", Dest: "d", Service: EchoService, Hop: 2, Path: []string{"g", "r"}},
	}
	for members := 1; members <= 5; members++ {
		ob := newOpenBudget(Limits{MaxCircuitsPerSource: 1024}, testLogger(t)) // the defaults: 64 a second, a bucket of 1,024
		total := 0
		for i := range members {
			total += spendThroughRelay(ob, fmt.Sprintf("m%d", i), now)
		}
		refused := 0
		for _, o := range honest {
			if spentFor(ob, o, now) {
				refused++
			}
		}
		t.Logf("%d members behind r: %d refusals charged at d, %d of 2 honest opens through r refused at once", members, total, refused)
		if want := members >= 4; (refused == len(honest)) != want || refused != 0 && refused != len(honest) {
			t.Errorf("%d members: %d of %d honest opens through r refused at once, want all: %v", members, refused, len(honest), want)
		}
	}
}

// TestOpenBudgetRelayNeighbourSpentByManyHonestSources measures what
// docs/SECURITY.md says of honest sources behind one relay: 1,000 clients
// behind r retry a service of d that went down, each within its own
// budget (1,024); once their refusals add up to r's bucket at d (32,768,
// about 33 each), every open through r is refused at once, another
// client's open to a service d has too, until the retries stop.
func TestOpenBudgetRelayNeighbourSpentByManyHonestSources(t *testing.T) {
	ob := newOpenBudget(Limits{MaxCircuitsPerSource: 1024}, testLogger(t))
	now := time.Now()
	other := &circuit.Open{Source: "h", Dest: "d", Service: EchoService, Hop: 1, Path: []string{"r"}}
	retries := 0
	for retries < 1024 && !spentFor(ob, other, now) {
		retries++
		for i := range 1000 {
			o := &circuit.Open{Source: fmt.Sprintf("c%d", i), Dest: "d", Service: "gone", Hop: 1, Path: []string{"r"}}
			if spentFor(ob, o, now) {
				continue
			}
			charges(ob, o, 1, now)
		}
	}
	t.Logf("h's open through r to d's echo refused at once after %d refused retries of each of 1,000 clients behind r", retries)
	if retries != 33 {
		t.Errorf("r's bucket spent after %d retries of each of 1,000 clients, want 33 (32,768 / 1,000)", retries)
	}
}
