package routing

import (
	"fmt"
	"testing"
	"time"
)

// partialAnswerRun drives x, the only engine: up (its route to origin o),
// a and m are neighbours the test speaks for. a asks x for seqno 12 of o
// (x holds 10); unless mAsk is 0, m asks for mAsk 100 ms later, as x's
// forward of a's request ends, and if mAsk is 11 up brings 11 5 ms after
// that; up brings 12 110 ms after a's request. a asks again 200 ms after
// its request (an engine's first retry) and every 400 ms after that. It
// returns how long after its request a got o at seqno 12 or later from x
// (0: not within 2 s).
func partialAnswerRun(t *testing.T, mAsk uint16) time.Duration {
	t.Helper()
	x, now := newXWithUpAM(t)
	send := func(from string, entries ...entry) {
		mustReceive(t, x, now, from, encodeMessage(entries))
	}
	bring := func(s uint16) {
		send("up", att("o", s, fmt.Sprintf("att:o/%d", s)), upd("o", s, 20))
	}
	bring(10)
	got := time.Duration(0)
	ask := func() { send("a", entry{kind: kindRequest, origin: "o", seqno: 12, hopcnt: 5}) }
	// Let x send its first updates, then follow what goes to a.
	for i := 0; i < 200; i++ {
		now = now.Add(5 * time.Millisecond)
		if nt := x.NextTick(); !nt.IsZero() && !nt.After(now) {
			x.Tick(now)
		}
		x.Ready()
	}
	start := now
	ask()
	for i := 1; i <= 400 && got == 0; i++ {
		now = now.Add(5 * time.Millisecond)
		el := now.Sub(start)
		switch {
		case mAsk != 0 && el == 100*time.Millisecond:
			send("m", entry{kind: kindRequest, origin: "o", seqno: mAsk, hopcnt: 5})
		case mAsk == 11 && el == 105*time.Millisecond:
			bring(11)
		case el == 110*time.Millisecond:
			bring(12)
		case el == 200*time.Millisecond, el > 200*time.Millisecond && (el-200*time.Millisecond)%(400*time.Millisecond) == 0:
			ask()
		}
		if nt := x.NextTick(); !nt.IsZero() && !nt.After(now) {
			x.Tick(now)
		}
		for _, msg := range x.Ready().Messages {
			if msg.To != "a" {
				continue
			}
			for _, en := range decodeAll(t, []Message{msg}) {
				if en.kind == kindUpdate && en.origin == "o" && en.metric < DefaultInfinity && !seqnoLess(en.seqno, 12) && got == 0 {
					got = el
				}
			}
		}
	}
	return got
}

// TestAttackPartialAnswerDelaysAsker: a asks x for seqno 12 of o; m, a
// neighbour of x, asks for 11 once x's forward of a's request ended, so
// that 11 reaching x answers the request x forwarded last. When x then
// forgot every neighbour that asked, 12 came next as a new seqno alone,
// held back from a (seqhold.go) until a asked again: a got it 200 ms
// after asking instead of 110 ms. It still gets it once 12 reaches x.
func TestAttackPartialAnswerDelaysAsker(t *testing.T) {
	checkAskerNotDelayed(t, 11)
}

// TestAttackHigherAskDelaysAsker: as above, but m asks for 40, beyond
// what a asked for: 12 reaching x then answers a's request, though not
// the one x forwarded last. When x answered only the seqno it forwarded
// last, 12 was held back from a until a asked again.
func TestAttackHigherAskDelaysAsker(t *testing.T) {
	checkAskerNotDelayed(t, 40)
}

// checkAskerNotDelayed fails unless a gets seqno 12 from x as soon with m
// asking x for mAsks as without m.
func checkAskerNotDelayed(t *testing.T, mAsks uint16) {
	t.Helper()
	quiet, loud := partialAnswerRun(t, 0), partialAnswerRun(t, mAsks)
	t.Logf("a got seqno 12 from x %v after asking without m, %v with m", quiet, loud)
	if quiet == 0 || loud == 0 {
		t.Fatalf("a never got seqno 12 (without m: %v, with m: %v)", quiet, loud)
	}
	if loud > quiet {
		t.Errorf("m's request delayed x's answer to a from %v to %v", quiet, loud)
	}
}

// newXWithUpAM is an engine x whose neighbours up, a and m are linked at
// ct0 (cost 10), and that time.
func newXWithUpAM(t *testing.T) (*Engine, time.Time) {
	t.Helper()
	x, err := New(Config{Self: "x", Certifier: hostCertifier{f: &fakeCertifier{}}})
	if err != nil {
		t.Fatal(err)
	}
	now := ct0
	for _, nb := range []string{"up", "a", "m"} {
		x.LinkUp(now, nb, 10, false)
	}
	return x, now
}
