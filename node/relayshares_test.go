package node

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// The relay budget's split behind an entry, at the default budget (32 a
// second, burst 32, for one link and destination), entries given nearest
// first as relayEntries gives them: a lone source two relays back still
// gets the burst at once and the rate after; a source flooding behind
// entry x leaves another source behind x its part of x's share (a
// sixteenth of the budget) and another entry its share (a quarter);
// three relays back, a sixty-fourth (one token); x making up a name
// behind itself for each open spends x's share and leaves another entry
// its own; tokens given back return to every share they came from; the
// table stays bounded when more sources behind one entry than it holds
// spend theirs.
func TestRelayBudgetSplitBehindEntry(t *testing.T) {
	const rate = 32
	t0 := time.Unix(1000, 0)
	newL := func(rate int) *limiter {
		return newLimiter(Limits{RelayFullHandshakesPerLink: rate}, slog.New(slog.DiscardHandler))
	}
	take := func(l *limiter, entries string, now time.Time) bool {
		ok, _ := l.tryRelayFull("r1", "d", entries, now)
		return ok
	}
	atOnce := func(l *limiter, entries string, now time.Time) int {
		n := 0
		for take(l, entries, now) {
			n++
		}
		return n
	}
	l := newL(rate)
	if got := atOnce(l, "x\x00m", t0); got != rate {
		t.Errorf("a lone source behind x got %d at once, want the budget's burst %d", got, rate)
	}
	got := 0
	for i := 1; i <= 10*rate; i++ {
		if take(l, "x\x00m", t0.Add(time.Duration(i)*time.Second/rate)) {
			got++
		}
	}
	if got < 10*rate-1 {
		t.Errorf("a lone source behind x got %d over 10 s, want the link's rate (%d)", got, 10*rate)
	}

	// flooded is a limiter after a flood of the given entries, one open
	// asked for every millisecond for a second (entries a function of
	// the open's number).
	flooded := func(entries func(i int) string) *limiter {
		l := newL(rate)
		for i := range 1000 {
			take(l, entries(i), t0.Add(time.Duration(i)*time.Millisecond))
		}
		return l
	}
	now := t0.Add(999 * time.Millisecond) // the flood's last open: it took what the reserves left
	m := func(int) string { return "x\x00m" }
	for _, c := range []struct {
		flood       func(int) string
		other, what string
		want        int
	}{
		{m, "x\x00h", "another source behind x", rate / 16},
		{m, "y", "another entry", rate / relayEntryShare},
		{func(int) string { return "x\x00y\x00m" }, "x\x00y\x00h", "another source behind y behind x", 1},
		{func(int) string { return "x\x00y\x00m" }, "x\x00z", "another node behind x", rate / 16},
		{func(i int) string { return fmt.Sprintf("x\x00made-up%d", i) }, "y", "another entry, x making up names behind itself,", rate / relayEntryShare},
	} {
		if got := atOnce(flooded(c.flood), c.other, now); got < c.want {
			t.Errorf("after a flood of %q, %s (%q) got %d at once, want at least %d", c.flood(0), c.what, c.other, got, c.want)
		}
	}

	// Tokens given back return to every share they came from: the burst
	// taken and given back is there to take again.
	l = newLimiter(Limits{RelayFullHandshakesPerLink: rate, FullHandshakesPerLink: 4 * rate}, slog.New(slog.DiscardHandler))
	var helds []relayHeld
	for {
		held, _ := l.tryRelayOneMessage("r1", "d", "x\x00m", t0)
		if held == nil {
			break
		}
		helds = append(helds, held)
	}
	for _, held := range helds {
		l.giveRelayOneMessage(held, t0)
	}
	again := 0
	for {
		held, _ := l.tryRelayOneMessage("r1", "d", "x\x00m", t0)
		if held == nil {
			break
		}
		again++
	}
	if again != len(helds) || again != 4*rate {
		t.Errorf("one-message budget: %d taken at once, %d again after giving them back, want the burst %d both times", len(helds), again, 4*rate)
	}

	// A budget large enough that every source below takes one token of
	// its shares and leaves them not full.
	l = newL(64 * maxRelayEntries)
	for i := range 2 * maxRelayEntries {
		if !take(l, fmt.Sprintf("x\x00s%d", i), t0) {
			t.Fatalf("source %d refused", i)
		}
	}
	if n := len(l.relayFullByEntry.m); n > maxRelayEntries+1 {
		t.Errorf("%d shares held, want at most %d and the link's overflow share", n, maxRelayEntries)
	}
}

// relayEntries names the nodes before the neighbour an open came from,
// nearest first, relayShareDepth at most, ending with the source where
// the path goes back that far, whether or not the source recorded itself
// in the path.
func TestRelayEntriesNearestFirst(t *testing.T) {
	for _, c := range []struct {
		hop   uint8
		flags circuit.Flags
		path  []string
		want  []string
	}{
		{0, 0, nil, []string{"m"}},
		{1, 0, []string{"r1"}, []string{"m"}},
		{2, 0, []string{"x", "r1"}, []string{"x", "m"}},
		{2, circuit.FlagRecordPath, []string{"m", "x", "r1"}, []string{"x", "m"}},
		{3, 0, []string{"y", "x", "r1"}, []string{"x", "y", "m"}},
		{4, 0, []string{"z", "y", "x", "r1"}, []string{"x", "y", "z"}},
		{5, 0, []string{"w", "z", "y", "x", "r1"}, []string{"x", "y", "z"}},
	} {
		o := &circuit.Open{Source: "m", Dest: "d", Hop: c.hop, Flags: c.flags, Path: c.path}
		if got := strings.Split(relayEntries(o), "\x00"); !slices.Equal(got, c.want) {
			t.Errorf("hop %d, path %v: entries %q, want %q", c.hop, c.path, got, c.want)
		}
	}
}
