package routing

import (
	"testing"
	"time"
)

// deadEndRun drives x, whose neighbours are up (its route to origin o,
// at seqno 10), a (an honest asker) and m. a asks x for seqno 11 of o
// (hopcnt 100) at start and at an engine's retry backoff after that. If
// attack, m sends x a request for seqno 10+0x7fff of o with hopcnt 2
// every 5 ms (x admits 5,000 messages a second from a neighbour): x
// forwards it with hopcnt 1, which dies at up. It returns
// the requests for o x sent to up: how many, and how many could reach
// beyond up (hopcnt >= 2).
func deadEndRun(t *testing.T, attack, afterA bool) (sent, useful int) {
	t.Helper()
	x, now := newXWithUpAM(t)
	send := func(from string, entries ...entry) {
		mustReceive(t, x, now, from, encodeMessage(entries))
	}
	send("up", att("o", 10, "att:o/10"), upd("o", 10, 20))
	for i := 0; i < 200; i++ {
		now = now.Add(5 * time.Millisecond)
		if attack && i >= 160 { // m starts before a asks
			send("m", entry{kind: kindRequest, origin: "o", seqno: 10 + 0x7fff, hopcnt: 2})
		}
		if nt := x.NextTick(); !nt.IsZero() && !nt.After(now) {
			x.Tick(now)
		}
		x.Ready()
	}
	start := now
	nextAsk, backoff := time.Duration(0), 200*time.Millisecond
	for i := 1; i <= 2000; i++ { // 10 s
		now = now.Add(5 * time.Millisecond)
		el := now.Sub(start)
		asked := el >= nextAsk
		if asked {
			ask := entry{kind: kindRequest, origin: "o", seqno: 11, hopcnt: 100}
			if attack && afterA { // m's arrives before x ticks
				if err := x.Receive(now, "a", encodeMessage([]entry{ask})); err != nil {
					t.Fatal(err)
				}
			} else {
				send("a", ask)
			}
			nextAsk = el + backoff
			backoff = min(2*backoff, 4*time.Second)
		}
		if attack && (!afterA || asked) { // every 5 ms, or right after each of a's, before x sends it on
			send("m", entry{kind: kindRequest, origin: "o", seqno: 10 + 0x7fff, hopcnt: 2})
		}
		if nt := x.NextTick(); !nt.IsZero() && !nt.After(now) {
			x.Tick(now)
		}
		for _, msg := range x.Ready().Messages {
			if msg.To != "up" {
				continue
			}
			for _, en := range decodeAll(t, []Message{msg}) {
				if en.kind == kindRequest && en.origin == "o" {
					sent++
					if en.hopcnt >= 2 {
						useful++
					}
				}
			}
		}
	}
	if attack {
		t.Logf("x stats: over budget %d, refused requests %d", x.Stats().OverBudget, x.Stats().RefusedRequests)
	}
	return sent, useful
}

// TestAttackDeadEndRequestsStarveForwarding: m, a neighbour of x, keeps
// x's "already forwarded recently" window for o filled with requests for
// the farthest seqno and a hop count that makes them die one hop later,
// or sends one right after each of a's, before x sends a's on.
// Before, a's request for o's next seqno, which x should forward toward
// o, was never forwarded in 10 s; now x forwards it as it does without m.
func TestAttackDeadEndRequestsStarveForwarding(t *testing.T) {
	qs, qu := deadEndRun(t, false, false)
	if qu == 0 {
		t.Fatalf("x never forwarded a's request even without m")
	}
	for _, afterA := range []bool{false, true} {
		as, au := deadEndRun(t, true, afterA)
		t.Logf("without m: x sent up %d requests for o, %d able to reach o; with m (only right after a: %v): %d, %d", qs, qu, afterA, as, au)
		if au == 0 {
			t.Errorf("with m (only right after a: %v), x never forwarded a's request toward o in 10 s (it sent %d dead-end requests)", afterA, as)
		}
	}
}
