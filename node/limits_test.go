package node

import (
	"log/slog"
	"testing"
)

// Circuits that neighbours claim to relay for one source are bounded in
// all, whatever the number of neighbours they come through (a source with
// many links cannot take a relay's whole circuit budget), while one
// neighbour forging a source's name still leaves the source its own
// allowance through its other neighbours and, proven, directly.
func TestClaimedCircuitsBoundedAcrossNeighbours(t *testing.T) {
	const per = 4
	l := newLimiter(Limits{MaxCircuits: 1000, MaxCircuitsPerSource: per, MaxCircuitsPerLink: 1000}, slog.New(slog.DiscardHandler))
	admit := func(src limitSource, want bool) {
		t.Helper()
		_, err := l.admit(src)
		if (err == nil) != want {
			t.Fatalf("admit %v: %v, want admitted=%v", src, err, want)
		}
	}
	// s through three neighbours: twice the limit in all, not three times.
	for _, via := range []string{"n1", "n2"} {
		for range per {
			admit(limitSource{name: "s", via: via}, true)
		}
	}
	admit(limitSource{name: "s", via: "n3"}, false)
	// s's proven circuits (hop 0) keep their own allowance.
	for range per {
		admit(limitSource{name: "s"}, true)
	}
	admit(limitSource{name: "s"}, false)
	// m forges x up to the pair's limit; x keeps its allowance through h.
	for range per {
		admit(limitSource{name: "x", via: "m"}, true)
	}
	admit(limitSource{name: "x", via: "m"}, false)
	for range per {
		admit(limitSource{name: "x", via: "h"}, true)
	}
	// Released circuits give the room back.
	tk, err := l.admit(limitSource{name: "y", via: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	tk.release()
	if len(l.claimed) != 2 || l.claimed["y"] != 0 {
		t.Fatalf("claimed counts after release: %v", l.claimed)
	}
}
