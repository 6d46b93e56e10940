package circuit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestResumeAfterResumeFrameLost: a resume path that loses the source's
// resume frame (a relay that swallows what the source sends once the
// path is up: wedged, crashed half-way, or a machine too slow to pass it
// on before the destination stops waiting) makes the destination give
// the attempt up, and the source tries another path, on which the
// circuit goes on. Before, the destination reset such an attempt as it
// resets a resume of a circuit it does not hold (cancelled, by an end),
// which the source takes as a refusal for good: it ended the circuit
// while the destination still held it (in a 3×3 mesh under load,
// TestResumeGridFiveRelayCrashes: "refused to resume … i/o timeout").
func TestResumeAfterResumeFrameLost(t *testing.T) {
	g := newResumeRig(t)
	g.frameWait = 300 * time.Millisecond
	var swallowed atomic.Bool
	var redials atomic.Int32
	redial := func(ctx context.Context) (Path, error) {
		if redials.Add(1) > 1 {
			return g.redial(ctx)
		}
		// The first path's relay forwards the handshake, then nothing
		// more toward the destination.
		var wedged atomic.Bool
		g.mu.Lock()
		g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
			return in, wedgeStream{out, &wedged}
		}
		g.mu.Unlock()
		p, err := g.redial(ctx)
		wedged.Store(true)
		swallowed.Store(true)
		return p, err
	}
	_, src, dst := g.pair(ResumeConfig{Redial: redial}, ResumeConfig{})
	served := serveEcho(dst)
	echoByte(t, src, 'a')
	waitRegistered(t, g.table, 1)
	crash(g.paths[0])
	echoByte(t, src, 'b')
	if !swallowed.Load() {
		t.Fatal("the source never took the path that swallows its resume frame")
	}
	if n := redials.Load(); n < 2 {
		t.Errorf("source dialled %d paths, want the one that lost its resume frame and another", n)
	}
	endEcho(t, src, served)
}
