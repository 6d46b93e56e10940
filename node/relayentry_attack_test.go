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
	fullFloodThenFirstDial(t, "r1", "m-r1", "h-r1", "r1-r2", "r2-d")
}

// fullFloodThenFirstDial is the attack above in the mesh of edges (m and
// h linked to via, d at the end of a chain from it): m floods d through
// via with full first messages built once and replayed, from 32
// goroutines, and h opens its first circuit to d once 50 of them were
// refused overloaded, however slowly a loaded machine starts the flood.
// d's budget is 8 full handshakes a second a link, the last relay's 2.
func fullFloodThenFirstDial(t *testing.T, via string, edges ...string) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.FullHandshakesPerLink = 8 }
	c.build(edges...)
	hops := len(edges) - 1 // every edge but h's is on m's path
	c.waitRoute("m", "d", hops)
	c.waitRoute("h", "d", hops)
	m, h := c.nodes["m"], c.nodes["h"]
	l := m.link(via)
	if l == nil {
		t.Fatalf("no link m-%s", via)
	}
	sent, overloaded, stop := floodCostlyFirst(t, m, "d", nil, firstFull, l, l) // 32 goroutines
	for deadline := time.Now().Add(patience); overloaded.Load() < 50; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("m's flood had %d of %d full first messages refused overloaded after %v", overloaded.Load(), sent.Load(), patience)
		}
	}

	refused, tries, ok := dialUntilAccepted(t, h, "d")
	stop()
	t.Logf("m sent %d full first messages to d through %s (%d refused overloaded); h's first dial to d was refused overloaded %d times in %d tries (succeeded: %v)",
		sent.Load(), via, overloaded.Load(), refused, tries, ok)
	if refused > 0 {
		t.Errorf("m, through %s, spent the last relay's budget that h's first circuit to d needs: honest h was refused overloaded %d times of %d", via, refused, tries)
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
// three renewals succeeds (failedOneMessageThroughRelay). d's budget of
// failed one-message handshakes for r2's link (64 a second, burst 64)
// holds m's opens through r2 however they arrive, as in
// TestAttackTwoRelaysBackSpendsTheEntrysRetries: what is measured is
// r2's budget. At d's 2 a second, burst 2, beside busy loops m's opens
// that r2 let through a second apart reached d together with h's, and d
// refused h's overloaded (2 and 4 runs in 30).
func TestAttackNeighbourOfPreviousRelaySpendsItsLinkRetries(t *testing.T) {
	failedOneMessageThroughRelayWith(t, firstReplayedOneMessage, func(cfg *Config) {
		// r2: 1 a second from one link to d (burst 16).
		cfg.Limits.FullHandshakesPerLink = 2
		cfg.Limits.MaxCircuitsPerSource = 16
		if cfg.Name == "d" {
			cfg.Limits.FullHandshakesPerLink = 64
		}
	}, "r1", "m-r1", "h-r1", "r1-r2", "r2-d")
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
