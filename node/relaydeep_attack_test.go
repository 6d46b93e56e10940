package node

import "testing"

// TestAttackTwoRelaysBackSpendsTheEntrysBudget: in m–x–r1–r2–d with h,
// an honest node, also a neighbour of x (x, r1 and r2 honest), m (a valid
// certificate, on no path of h's) sends opens to d through x, r1 and r2
// whose full (XX) first message is built once and replayed. r2, the last
// relay, splits its budget of full first messages from r1's link to d
// (Limits.RelayFullHandshakesPerLink) by entry, the node r1 names before
// itself: x for m's opens and h's alike, so m's flood spent x's share
// and h's first circuit to d was refused `overloaded` at r2 while the
// flood lasted. Now the share of x is split again by the node x names
// before itself (its source here, which x proved): m's flood spends m's
// part of x's share and what the reserves leave, and h's part is its own.
// The budget is lowered as there (fullFloodThenFirstDial).
func TestAttackTwoRelaysBackSpendsTheEntrysBudget(t *testing.T) {
	fullFloodThenFirstDial(t, "x", "m-x", "h-x", "x-r1", "r1-r2", "r2-d")
}

// TestAttackTwoRelaysBackSpendsTheEntrysRetries: the attack above with
// one-message (IK) first messages that fail at d (replays of one m took
// once), as TestAttackNeighbourOfPreviousRelaySpendsItsLinkRetries one
// relay further: r2 holds a token of x's share of its budget of those
// from r1's link to d for each until d answers retry, so m's flood spent
// it and h, holding d's old key after d renewed its certificate, had its
// dial refused `overloaded` at r2 instead of answered retry. Now h's
// retries come out of its own part of x's share, and each of h's dials
// after three renewals succeeds (failedOneMessageThroughRelay). r2's
// budget is 1 a second, burst 64, so that h's part of x's share (a
// sixteenth of the budget) holds the 3 retries, and d's budget of failed
// one-message handshakes for r2's link (64 a second, burst 64) holds
// m's burst through r2 however slowly it arrives: what is measured is
// r2's budget.
func TestAttackTwoRelaysBackSpendsTheEntrysRetries(t *testing.T) {
	failedOneMessageThroughRelayWith(t, firstReplayedOneMessage, func(cfg *Config) {
		cfg.Limits.FullHandshakesPerLink = 64
		cfg.Limits.RelayFullHandshakesPerLink = 1
		cfg.Limits.MaxCircuitsPerSource = 64
	}, "x", "m-x", "h-x", "x-r1", "r1-r2", "r2-d")
}
