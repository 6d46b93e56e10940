package circuit

import (
	"context"
	"io"
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
	served := make(chan error, 1)
	go func() {
		_, err := io.Copy(dst, dst)
		if err == nil {
			err = dst.CloseWrite()
		}
		served <- err
	}()
	echo := func(b byte) {
		t.Helper()
		buf := []byte{b}
		if _, err := src.Write(buf); err != nil {
			t.Fatalf("write %q: %v", b, err)
		}
		if _, err := io.ReadFull(src, buf); err != nil || buf[0] != b {
			t.Fatalf("echo of %q: %q, %v", b, buf, err)
		}
	}
	echo('a')
	waitRegistered(t, g.table, 1)
	crash(g.paths[0])
	echo('b')
	if !swallowed.Load() {
		t.Fatal("the source never took the path that swallows its resume frame")
	}
	if n := redials.Load(); n < 2 {
		t.Errorf("source dialled %d paths, want the one that lost its resume frame and another", n)
	}
	if err := src.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("echo: %v", err)
	}
}
