package circuit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// resetAfterStream is a relay's stream toward the destination that
// forwards at most budget bytes of the circuit and then resets the
// circuit's two streams with "link lost", while the relay's links stay
// up: a relay that resets whatever carries data. The budget lets a
// resume's open, handshake and resume frame through.
type resetAfterStream struct {
	links.Stream
	in     links.Stream
	budget int

	mu   sync.Mutex
	sent int
}

func (s *resetAfterStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	over := s.sent+len(p) > s.budget
	if !over {
		s.sent += len(p)
	}
	s.mu.Unlock()
	if over {
		s.Stream.Reset(CloseLinkLost)
		s.in.Reset(CloseLinkLost)
		return 0, errors.New("reset by the relay")
	}
	return s.Stream.Write(p)
}

// Every resumed path of a circuit goes through a relay that resets it as
// soon as the source writes on it: each resume takes the circuit over,
// and nothing moves. The source gives up after MaxResumesWithoutProgress
// such paths with ErrResumeLoop, long before its resume timeout (a
// minute here), instead of resuming for as long as the relay likes.
func TestResumeLoopWithoutProgressEnds(t *testing.T) {
	g := newResumeRig(t)
	var resumed atomic.Int64
	scfg := ResumeConfig{Timeout: time.Minute, Window: 64 << 10, Redial: func(ctx context.Context) (Path, error) {
		if n := resumed.Load(); n >= 2*MaxResumesWithoutProgress {
			// Far beyond the bound: end the circuit (the test has failed;
			// the rig holds the results of at most 16 resumes).
			return nil, fmt.Errorf("%d resumed paths already: %w", n, ErrResumeRefused)
		}
		g.mu.Lock()
		g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
			return in, &resetAfterStream{Stream: out, in: in, budget: 2 << 10}
		}
		g.mu.Unlock()
		p, err := g.redial(ctx)
		if err == nil {
			resumed.Add(1)
		}
		return p, err
	}}
	p, src, dst := g.pair(scfg, ResumeConfig{Timeout: time.Minute})
	go io.Copy(io.Discard, dst)
	chunk := make([]byte, 16<<10)
	if _, err := src.Write(chunk); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)
	crash(p)
	src.SetWriteDeadline(time.Now().Add(30 * time.Second))
	var err error
	for err == nil {
		_, err = src.Write(chunk)
	}
	t.Logf("%d resumed paths, then: %v", resumed.Load(), err)
	if !errors.Is(err, ErrResumeLoop) {
		t.Fatalf("Write: %v, want ErrResumeLoop", err)
	}
	// The first resumed path may move (the destination acknowledges on
	// it what it read meanwhile): it is not counted.
	if n := resumed.Load(); n > MaxResumesWithoutProgress+1 {
		t.Errorf("%d resumed paths, want at most %d", n, MaxResumesWithoutProgress+1)
	}
}

// An idle circuit whose resumed path fails long after the circuit last
// carried data, twice its resume timeout here, resumes again: the
// timeout counts from that failure, since nothing was held up meanwhile,
// so the source tries a new path instead of giving up at once, and the
// circuit carries data afterwards. How long the new path takes is the
// machine's: a source that tried and ran out of its timeout meanwhile
// still showed the timeout counting from the failure.
func TestResumeIdlePathFailsAfterTimeout(t *testing.T) {
	// The first resume only sets the scene; on a loaded machine it may
	// itself run out of the short timeout, and then the scene is set
	// again on a new circuit.
	for try := 1; ; try++ {
		if resumeIdlePathFailsAfterTimeout(t) {
			return
		}
		if try == 5 {
			t.Fatal("the first resume of 5 circuits each ran out of its timeout")
		}
	}
}

// resumeIdlePathFailsAfterTimeout runs TestResumeIdlePathFailsAfterTimeout
// on one circuit; false when its first resume failed.
func resumeIdlePathFailsAfterTimeout(t *testing.T) bool {
	t.Helper()
	g := newResumeRig(t)
	const timeout = 500 * time.Millisecond
	events := make(chan ResumeEvent, 4)
	onResume := func(e ResumeEvent) {
		select {
		case events <- e:
		default:
		}
	}
	p, src, dst := g.pair(ResumeConfig{Timeout: timeout, OnResume: onResume}, ResumeConfig{})
	go echoBytes(dst)
	exchange := func(msg string) {
		t.Helper()
		src.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := src.Write([]byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(src, got); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q, %v", msg, got, err)
		}
	}
	next := func() ResumeEvent {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(30 * time.Second):
			t.Fatal("no resume event in 30 s")
			return ResumeEvent{}
		}
	}
	exchange("first")
	waitRegistered(t, g.table, 1)
	crash(p)
	if e := next(); e.Err != nil {
		t.Logf("first resume failed on this machine, trying a new circuit: %v", e.Err)
		return false
	}
	time.Sleep(2 * timeout) // idle on the resumed path
	g.mu.Lock()
	resumed := g.paths[len(g.paths)-1]
	g.mu.Unlock()
	crash(resumed)
	switch e := next(); {
	case e.Err == nil:
		exchange("after two resumes")
	case e.Attempts > 0 && errors.Is(e.Err, ErrResumeTimeout):
		t.Logf("second resume tried %d paths and ran out of its %v: %v", e.Attempts, timeout, e.Err)
	default:
		t.Fatalf("second resume: %d attempts, %v; want a new path tried", e.Attempts, e.Err)
	}
	return true
}
