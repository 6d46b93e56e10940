package node

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

func testLimiter(per int) *limiter {
	return newLimiter(Limits{MaxCircuits: 1 << 20, MaxCircuitsPerSource: per, MaxCircuitsPerLink: 1 << 20}, slog.New(slog.DiscardHandler))
}

// claim is the source of a relayed open claiming source along relays
// (hop len(relays)), its path recorded from the source when recorded.
func claim(source string, recorded bool, relays ...string) limitSource {
	o := &circuit.Open{Source: source, Dest: "d", Hop: uint8(len(relays)), Path: slices.Clone(relays)}
	if recorded {
		o.Flags |= circuit.FlagRecordPath
		o.Path = append([]string{source}, relays...)
	}
	return relaySource(o)
}

// Circuits claimed for one source along paths that differ only in their
// first relay are bounded together at twice the limit, whatever the
// number of first relays (a source with many links cannot take a relay's
// whole circuit budget), while one first relay forging a source's name
// still leaves the source its own allowance through the others and,
// proven, directly.
func TestClaimedCircuitsBoundedAcrossNeighbours(t *testing.T) {
	const per = 4
	l := testLimiter(per)
	admit := func(src limitSource, want bool) {
		t.Helper()
		_, err := l.admit(src, "")
		if (err == nil) != want {
			t.Fatalf("admit %v: %v, want admitted=%v", src, err, want)
		}
	}
	for _, rest := range [][]string{nil, {"p"}, {"q", "p"}} {
		// s through three first relays: twice the limit in all.
		for _, first := range []string{"n1", "n2"} {
			for range per {
				admit(claim("s", false, append([]string{first}, rest...)...), true)
			}
		}
		admit(claim("s", false, append([]string{"n3"}, rest...)...), false)
		// m forges x up to its path's limit; x keeps its allowance through h.
		for range per {
			admit(claim("x", false, append([]string{"m"}, rest...)...), true)
		}
		admit(claim("x", false, append([]string{"m"}, rest...)...), false)
		for range per {
			admit(claim("x", false, append([]string{"h"}, rest...)...), true)
		}
	}
	// s's proven circuits (hop 0) keep their own allowance.
	for range per {
		admit(limitSource{name: "s"}, true)
	}
	admit(limitSource{name: "s"}, false)
	// Released circuits give the room back, and their entries.
	paths, shares := len(l.perSrc), len(l.claimed)
	tk, err := l.admit(claim("y", false, "n1"), "")
	if err != nil {
		t.Fatal(err)
	}
	tk.release()
	tk.release()
	if len(l.perSrc) != paths || len(l.claimed) != shares {
		t.Fatalf("entries after release: %d paths, %d shares, want %d, %d", len(l.perSrc), len(l.claimed), paths, shares)
	}
}

// TestClaimKeys: which claims count together. A path recorded from the
// source counts as the same relays unrecorded; paths that differ count
// apart; paths that differ only in their first relay share a total.
func TestClaimKeys(t *testing.T) {
	for _, tc := range []struct {
		name      string
		a, b      limitSource
		samePath  bool
		sameShare bool
	}{
		{"same relays", claim("h", false, "q", "p"), claim("h", false, "q", "p"), true, true},
		{"recorded from the source", claim("h", false, "q", "p"), claim("h", true, "q", "p"), true, true},
		{"first relays differ", claim("h", false, "q", "p"), claim("h", false, "m", "p"), false, true},
		{"first relay of one hop", claim("h", false, "p"), claim("h", false, "m"), false, true},
		{"a forger's prefix", claim("h", false, "q", "p"), claim("h", false, "q", "m", "p"), false, false},
		{"a forger's prefix ending alike", claim("h", false, "q", "p"), claim("h", false, "m", "q", "p"), false, false},
		{"other sources", claim("h", false, "q", "p"), claim("g", false, "q", "p"), false, false},
		{"one name or two", claim("h", false, "mp"), claim("h", false, "m", "p"), false, false},
		{"proven and claimed", limitSource{name: "h"}, claim("h", false, "p"), false, false},
	} {
		ap, as := tc.a.keys()
		bp, bs := tc.b.keys()
		if (ap == bp) != tc.samePath || (as == bs) != tc.sameShare {
			t.Errorf("%s: %v and %v: same path %v, same share %v; want %v, %v", tc.name, tc.a, tc.b, ap == bp, as == bs, tc.samePath, tc.sameShare)
		}
	}
}

// TestForgerKeysNeverMeetTheSource: a forger k hops from the relay (its
// name then k-1 honest relays end the path: the relays after it check
// that) claims source h with every prefix of up to two names before its
// own, recorded from the source or not, as many circuits as the relay
// admits for each, more than twice the per-source limit in all. h's
// circuits along any path that does not cross the forger still get h's
// whole per-source limit (and no more).
func TestForgerKeysNeverMeetTheSource(t *testing.T) {
	const per = 4
	names := []string{"a", "h", "p", "q", "r"}
	prefixes := [][]string{nil}
	for _, x := range names {
		prefixes = append(prefixes, []string{x})
		for _, y := range names {
			prefixes = append(prefixes, []string{x, y})
		}
	}
	honest := [][]string{{"p"}, {"q", "p"}, {"a", "q", "p"}, {"q", "a", "p"}, {"p", "q", "p"}}
	for _, after := range [][]string{nil, {"p"}, {"q", "p"}, {"a", "q", "p"}} {
		for _, hp := range honest {
			t.Run(fmt.Sprintf("forger %d hops away, h along %v", 1+len(after), hp), func(t *testing.T) {
				l := testLimiter(per)
				forged := 0
				for _, prefix := range prefixes {
					relays := append(append(slices.Clone(prefix), "m"), after...)
					for _, recorded := range []bool{false, true} {
						for range per + 1 {
							if _, err := l.admit(claim("h", recorded, relays...), ""); err != nil {
								break
							}
							forged++
						}
					}
				}
				for i := range per + 1 {
					_, err := l.admit(claim("h", i%2 == 1, hp...), "")
					if i < per && err != nil {
						t.Fatalf("h's circuit %d along %v while the forger holds %d: %v", i, hp, forged, err)
					}
					if i == per && err == nil {
						t.Fatalf("h's circuit %d along %v admitted beyond the per-source limit", i, hp)
					}
				}
				if forged <= 2*per {
					t.Fatalf("the forger held %d claims with %d prefixes, no more than twice the limit: the attack did not run", forged, len(prefixes))
				}
			})
		}
	}
}

// reserveLimiter has a circuit limit of 64, 16 a link: its reserve is the
// last 16, for circuits coming in on links fewer than 1 came in on.
func reserveLimiter() *limiter {
	return newLimiter(Limits{MaxCircuits: 64, MaxCircuitsPerLink: 16, MaxCircuitsPerSource: 1 << 20}, slog.New(slog.DiscardHandler))
}

// Circuits relayed out toward a neighbour do not deny it the reserve of
// the circuit limit: three routers at their share, one of them relaying a
// circuit out through h, leave h's relayed circuits the reserve, where
// before the reserve tested every circuit crossing h's link and refused
// them.
func TestCircuitReserveCountsInboundOnly(t *testing.T) {
	l := reserveLimiter()
	for i := 1; i <= 3; i++ {
		m := fmt.Sprintf("m%d", i)
		for j := range 16 {
			next := fmt.Sprintf("x%d-%d", i, j%2) // within the reserves of their links' limits
			if i == 3 && j == 15 {
				next = "h" // routed out through h
			}
			if _, err := l.admit(limitSource{}, m, m, next); err != nil {
				t.Fatalf("%s's circuit %d: %v", m, j, err)
			}
		}
	}
	if _, err := l.admit(limitSource{}, "m1", "m1", "x1-0"); err == nil {
		t.Fatal("a fourth circuit from m1, at its share: admitted, want refused")
	}
	tk, err := l.admit(limitSource{}, "h", "h", "d")
	if err != nil {
		t.Fatalf("h's relayed circuit while 48 of 64 are held, one going out through h: %v", err)
	}
	if _, err := l.admit(limitSource{}, "h", "h", "d"); err == nil {
		t.Fatal("h's second relayed circuit from the reserve: admitted, want refused (a floor of 1)")
	}
	tk.release()
	if _, err := l.admit(limitSource{}, "h", "h", "d"); err != nil {
		t.Fatalf("h's relayed circuit after its first was released: %v", err)
	}
}

// fullReserveRefusals floods the default full-handshake budget from
// links links for 5 s of virtual time, each taking all it may
// every millisecond, and counts how many of 16 first contacts of another
// link (one every 250 ms after the first second) are refused.
func fullReserveRefusals(links int) int {
	c := Config{Name: "x"}
	c.setDefaults()
	l := newLimiter(c.Limits, slog.New(slog.DiscardHandler))
	now := time.Now()
	refused := 0
	for ms := range 5000 {
		now = now.Add(time.Millisecond)
		for a := range links {
			for {
				if ok, _ := l.tryFullHandshake(fmt.Sprintf("m%d", a), now); !ok {
					break
				}
			}
		}
		if ms >= 1000 && ms%250 == 0 {
			if ok, _ := l.tryFullHandshake("h", now); !ok {
				refused++
			}
		}
	}
	return refused
}

// While the node's budget of full handshakes is down to its reserve,
// every link draws at most fullFloor a second, so keeping it spent takes
// about FullHandshakes/fullFloor links (64 with the defaults), not the 4
// links at their budget that spent it before the reserve.
func TestFullReserveLinksToSpendIt(t *testing.T) {
	for _, n := range []int{4, 40} {
		if r := fullReserveRefusals(n); r != 0 {
			t.Errorf("%d flooding links: another link's first contact refused %d of 16 times, want 0", n, r)
		}
	}
	if r := fullReserveRefusals(70); r != 16 {
		t.Errorf("70 flooding links: another link's first contact refused %d of 16 times, want 16 (the reserve's rate spent)", r)
	}
}

// The last sixteenth of a link's circuit limit goes to circuits relayed
// out on it only from links fewer than linkFloor of whose circuits go out
// on it: one incoming link takes the rest, sixteen more take the reserve
// at their floor, and only then is a circuit from yet another link
// refused. Circuits this node opens, and those coming in on the link
// itself, are held by the limit alone.
func TestLinkReserveKeepsNextHopForOthers(t *testing.T) {
	const perLink = 1024 // a reserve of 64, a floor of 4
	l := newLimiter(Limits{MaxCircuits: 1 << 20, MaxCircuitsPerLink: perLink, MaxCircuitsPerSource: 1 << 20}, slog.New(slog.DiscardHandler))
	admitted := func(in, out string) int {
		n := 0
		for {
			if _, err := l.admit(limitSource{}, in, in, out); err != nil {
				return n
			}
			n++
		}
	}
	if n := admitted("m", "d"); n != perLink-64 {
		t.Fatalf("m's circuits to d: %d admitted, want %d (the limit but for the reserve)", n, perLink-64)
	}
	own, err := l.admit(limitSource{}, "", "d")
	if err != nil {
		t.Fatalf("a circuit this node opens to d while m holds the rest: %v", err)
	}
	own.release()
	back, err := l.admit(limitSource{}, "d", "d", "y")
	if err != nil {
		t.Fatalf("a circuit coming in on d, whose limit m holds but for the reserve: %v", err)
	}
	back.release()
	for i := range 16 {
		if n := admitted(fmt.Sprintf("h%d", i), "d"); n != 4 {
			t.Fatalf("h%d's circuits to d from the reserve: %d admitted, want 4 (the floor)", i, n)
		}
	}
	if _, err := l.admit(limitSource{}, "x", "x", "d"); err == nil {
		t.Fatal("a circuit from x to d with the reserve taken: admitted, want refused (the limit)")
	}
	if _, err := l.admit(limitSource{}, "", "d"); err == nil {
		t.Fatal("a circuit this node opens to d at the limit: admitted, want refused")
	}
	if len(l.across) != 17 {
		t.Fatalf("%d pairs of links counted, want 17 (m and h0 to h15 to d)", len(l.across))
	}
}

// TestConcurrentFailedOneMessagesHoldTheBudget: a link's one-message
// first messages whose cryptography runs at once each hold a token of
// its budget of failures, so no more of them run than it has left: m's
// 16 concurrent bogus messages through r all passed the look before the
// first failure was charged, and d ran the cryptography of 5 in 560 ms
// at a budget of 2 a second (burst 2). One that finds the tokens left all
// held waits for a hold to end: it runs once one succeeded (an honest
// burst waits its turn) and is refused once failures spent the budget.
func TestConcurrentFailedOneMessagesHoldTheBudget(t *testing.T) {
	now := time.Now()
	l := newLimiter(Limits{FullHandshakes: 1024, FullHandshakesPerLink: 2}, slog.New(slog.DiscardHandler))
	ran := 0
	for range 16 {
		if spent, _ := l.holdOneMessage("r", 0); !spent {
			ran++
		}
	}
	if ran != 2 {
		t.Fatalf("%d of 16 concurrent one-message handshakes on r's link ran their cryptography, want its budget of 2", ran)
	}
	if spent, _ := l.holdOneMessage("h", 0); spent {
		t.Fatal("another link's one-message handshake was refused: the holds of r's are r's alone")
	}
	l.endOneMessage("h", false, now)

	// A third waits; one of the two running succeeds: it runs.
	waited := make(chan bool)
	go func() {
		spent, _ := l.holdOneMessage("r", 10*time.Second)
		waited <- spent
	}()
	select {
	case <-waited:
		t.Fatal("a one-message handshake ran with both tokens of r's link held")
	case <-time.After(50 * time.Millisecond):
	}
	l.endOneMessage("r", false, now)
	if spent := <-waited; spent {
		t.Fatal("a one-message handshake waiting for a token was refused after a running one succeeded")
	}
	// Two running, both fail: the budget is spent, and a waiter refused.
	go func() {
		spent, _ := l.holdOneMessage("r", 10*time.Second)
		waited <- spent
	}()
	time.Sleep(50 * time.Millisecond)
	if ok, why := l.endOneMessage("r", true, now); !ok {
		t.Fatalf("a failure within the budget was refused: %s", why)
	}
	l.endOneMessage("r", true, now)
	if spent := <-waited; !spent {
		t.Fatal("a one-message handshake waiting for a token ran after failures spent r's budget")
	}
	if spent, _ := l.holdOneMessage("r", 0); !spent {
		t.Fatal("r's link ran a one-message handshake with its budget spent")
	}
	if got := len(l.failedIKHeld); got != 0 {
		t.Fatalf("%d links still hold one-message handshakes after all ended", got)
	}
}
