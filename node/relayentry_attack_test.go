package node

import (
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// TestAttackNeighbourOfPreviousRelaySpendsItsLinkBudget: in m–r1–r2–d
// with h, an honest node, also a neighbour of r1, m (a valid certificate,
// on no path of h's) sends opens to d through r1 and r2 whose full (XX)
// first message is built once and replayed. r2, the last relay, budgets
// the full first messages it forwards to d by the link they came in on
// (Limits.RelayFullHandshakesPerLink), r1's, which every source behind r1
// shares: m's flood took all of it and h's first circuit to d, which needs
// the full handshake, was refused `overloaded` at r2 for as long as the
// flood lasted. Now r2 splits that budget by entry, the neighbour r1 names
// before itself: an entry past its share draws on the link's budget only
// while more than one share is left in it, so h, whose share m cannot
// spend, is served. The budget is lowered (8 full handshakes a second a
// link, 2 relayed) so that the test does not depend on the machine's
// speed.
func TestAttackNeighbourOfPreviousRelaySpendsItsLinkBudget(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.FullHandshakesPerLink = 8 }
	c.build("m-r1", "h-r1", "r1-r2", "r2-d")
	c.waitRoute("m", "d", 3)
	c.waitRoute("h", "d", 3)
	m, h := c.nodes["m"], c.nodes["h"]
	l := m.link("r1")
	if l == nil {
		t.Fatal("no link m-r1")
	}
	sent, overloaded, stop := floodCostlyFirst(t, m, "d", nil, firstFull, l, l) // 32 goroutines
	time.Sleep(500 * time.Millisecond)

	refused, tries, ok := dialUntilAccepted(t, h, "d")
	stop()
	t.Logf("m sent %d full first messages through r1 and r2 (%d refused overloaded); h's first dial to d was refused overloaded %d times in %d tries (succeeded: %v)",
		sent.Load(), overloaded.Load(), refused, tries, ok)
	if refused > 0 {
		t.Errorf("m, a neighbour of r1, spent r2's budget for r1's link: honest h's first circuit to d was refused overloaded %d times of %d", refused, tries)
	}
	if overloaded.Load() == 0 {
		t.Errorf("none of m's %d full first messages was refused overloaded", sent.Load())
	}
}

// TestAttackNeighbourOfPreviousRelaySpendsItsLinkRetries: the attack
// above with one-message (IK) first messages that fail at d (replays of
// one m took once): r2 keeps a token of its budget of those from r1's
// link to d (Limits.RelayFullHandshakesPerLink, 1 a second here, burst
// 16) for each until d answers, and d answers each retry, so m's flood
// spent it, and when d renewed its certificate h, holding d's old key,
// had its next dial to d refused `overloaded` at r2 instead of answered
// retry and taken with the full handshake. Now h's retries come out of a
// share of r2's budget that m cannot spend, and each of h's dials after
// three renewals succeeds (failedOneMessageThroughRelay).
func TestAttackNeighbourOfPreviousRelaySpendsItsLinkRetries(t *testing.T) {
	failedOneMessageThroughRelay(t, firstReplayedOneMessage, "r1", "m-r1", "h-r1", "r1-r2", "r2-d")
}

// The relay budget's split by entry, at the default budget (32 a second,
// burst 32, for one link and destination): a lone entry gets the burst
// at once and the rate after, as with no split; an entry that
// spent its share leaves another entry its share whatever it keeps
// asking; the table of shares stays bounded when more entries than it
// holds spend theirs.
func TestRelayBudgetSplitByEntry(t *testing.T) {
	const rate = 32
	l := newLimiter(Limits{RelayFullHandshakesPerLink: rate}, slog.New(slog.DiscardHandler))
	t0 := time.Unix(1000, 0)
	take := func(entry string, now time.Time) bool {
		ok, _ := l.tryRelayFull("r1", "d", entry, now)
		return ok
	}
	burst := 0
	for take("h", t0) {
		burst++
	}
	if burst != rate {
		t.Errorf("a lone entry got %d at once, want the budget's burst %d", burst, rate)
	}
	got := 0
	for i := 1; i <= 10*rate; i++ {
		if take("h", t0.Add(time.Duration(i)*time.Second/rate)) {
			got++
		}
	}
	if got < 10*rate-1 {
		t.Errorf("a lone entry got %d over 10 s, want the link's rate (%d)", got, 10*rate)
	}

	l = newLimiter(Limits{RelayFullHandshakesPerLink: rate}, slog.New(slog.DiscardHandler))
	for i := range 1000 { // m asks far beyond its share, every millisecond
		take("m", t0.Add(time.Duration(i)*time.Millisecond))
	}
	now := t0.Add(time.Second)
	took := 0
	for take("h", now) {
		took++
	}
	if want := rate / relayEntryShare; took < want {
		t.Errorf("after m's flood h got %d at once, want at least its share's burst %d", took, want)
	}
	// A budget large enough that every entry below takes one token of
	// its share and leaves it not full.
	l = newLimiter(Limits{RelayFullHandshakesPerLink: 4 * maxRelayEntries}, slog.New(slog.DiscardHandler))
	for i := range 2 * maxRelayEntries {
		if !take(fmt.Sprintf("e%d", i), t0) {
			t.Fatalf("entry %d refused", i)
		}
	}
	if n := len(l.relayFullByEntry.m); n > maxRelayEntries+1 {
		t.Errorf("%d entries held, want at most %d and the link's overflow share", n, maxRelayEntries)
	}
}
