package circuit

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// stallStream is a relay's stream that holds its Writes until the time in
// until (zero: no hold) and, once wedged, swallows them: a relay that
// first delays the circuit's frames once, then stops forwarding.
type stallStream struct {
	links.Stream
	until  *atomic.Int64 // unix nanoseconds
	wedged *atomic.Bool
}

func (s stallStream) Write(b []byte) (int, error) {
	if u := s.until.Load(); u != 0 {
		time.Sleep(time.Until(time.Unix(0, u)))
	}
	if s.wedged.Load() {
		return len(b), nil
	}
	return s.Stream.Write(b)
}

func (s stallStream) CloseWrite() error {
	if s.wedged.Load() {
		return nil
	}
	return s.Stream.CloseWrite()
}

// TestAttackRelayInflatedRoundTripHoldsDeadPath: the silence limit of a
// resumable circuit grows with the round trip its ping/pong pairs
// measure, which is whatever a relay makes a pong take. A relay on the
// first path holds the circuit's first exchange once, for less than the
// open slack the source grants a first path (so that nothing fails),
// and then stops forwarding: the source must give the dead path up
// within a few progress timeouts. Before, the round trip's share of the
// limit (8 × srtt) had no bound: the hold of 1.1 s made it 8.6 s, the
// source kept the dead path for 8.6 s (ProgressTimeout 100 ms: about
// 0.5 s expected, docs/PROTOCOL.md §3.9), and the next path started
// with 17.2 s; with the defaults (2 s, 5 s open slack) a hold of about
// 6 s would have made it about 45 s, longer than the resume timeout,
// for the life of the circuit. Now it is at most 2 × ProgressTimeout.
func TestAttackRelayInflatedRoundTripHoldsDeadPath(t *testing.T) {
	const (
		pt    = 100 * time.Millisecond
		slack = time.Second
		hold  = 1100 * time.Millisecond // < pt + 4×pt (drain) + slack
	)
	g := newResumeRig(t)
	var until atomic.Int64
	var wedged atomic.Bool
	g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		return stallStream{in, &until, &wedged}, stallStream{out, &until, &wedged}
	}
	scfg := ResumeConfig{Window: 256 << 10, ProgressTimeout: pt, OpenSlack: slack}
	_, src, dst := g.pair(scfg, ResumeConfig{Window: 256 << 10, ProgressTimeout: pt})
	waitRegistered(t, g.table, 1)
	go func() { _, _ = io.Copy(io.Discard, dst) }()

	// The relay holds the source's first data (and the ping behind it)
	// and the destination's answer for `hold`, once.
	until.Store(time.Now().Add(hold).UnixNano())
	if _, err := src.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.acked == 1024 && src.pingAt.IsZero()
	})
	until.Store(0)
	if n := src.Resumes() + g.redials.Load(); n != 0 {
		t.Fatalf("setup: the hold of %v caused %d resumes or redials; it must stay within the first path's allowance", hold, n)
	}
	src.mu.Lock()
	srtt, limit := src.srtt, src.silenceLimitLocked()
	src.mu.Unlock()
	t.Logf("after one held exchange of %v: srtt %v, silence limit %v (ProgressTimeout %v)", hold, srtt, limit, pt)

	// Now the relay stops forwarding. The source has data in flight, so
	// it waits, and must give the dead path up and resume within a few
	// progress timeouts.
	wedged.Store(true)
	start := time.Now()
	if _, err := src.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	const want = 3 * time.Second // 5 × pt = 0.5 s, with room for a loaded machine
	deadline := start.Add(25 * time.Second)
	for src.Resumes() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	src.mu.Lock()
	after := src.silenceLimitLocked()
	src.mu.Unlock()
	t.Logf("resumed after %v; the new path (another relay) starts with silence limit %v", took.Round(time.Millisecond), after)
	if src.Resumes() == 0 || took > want {
		t.Fatalf("a relay that held one exchange for %v (srtt %v, silence limit %v) then stopped forwarding held the circuit on the dead path for %v (resumes %d); want a resume within %v (ProgressTimeout %v)",
			hold, srtt, limit, took.Round(time.Millisecond), src.Resumes(), want, pt)
	}
}
