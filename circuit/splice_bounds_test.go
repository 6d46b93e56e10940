package circuit

import (
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// chanStream is a links.Stream driven by the test: Read returns the
// chunks sent on in (io.EOF once in is closed), Write takes delay, or
// blocks until Reset when block is set. Reset records its code.
type chanStream struct {
	in     chan []byte
	delay  time.Duration
	block  atomic.Bool
	resetc chan struct{}
	once   sync.Once
	code   atomic.Uint64
	wrote  atomic.Int64
}

func newChanStream() *chanStream {
	return &chanStream{in: make(chan []byte, 16), resetc: make(chan struct{})}
}

func (s *chanStream) resetErr() error { return &links.StreamResetError{Code: s.code.Load()} }

func (s *chanStream) Read(p []byte) (int, error) {
	select {
	case b, ok := <-s.in:
		if !ok {
			return 0, io.EOF
		}
		return copy(p, b), nil
	case <-s.resetc:
		return 0, s.resetErr()
	}
}

func (s *chanStream) Write(p []byte) (int, error) {
	if s.block.Load() {
		<-s.resetc
		return 0, s.resetErr()
	}
	select {
	case <-time.After(s.delay):
	case <-s.resetc:
		return 0, s.resetErr()
	}
	s.wrote.Add(int64(len(p)))
	return len(p), nil
}

func (s *chanStream) Reset(code uint64) {
	s.once.Do(func() {
		s.code.Store(code)
		close(s.resetc)
	})
}

func (s *chanStream) wasReset() bool {
	select {
	case <-s.resetc:
		return true
	default:
		return false
	}
}

func (s *chanStream) CloseWrite() error                { return nil }
func (s *chanStream) CloseRead(uint64)                 {}
func (s *chanStream) Close() error                     { return nil }
func (s *chanStream) SetDeadline(time.Time) error      { return nil }
func (s *chanStream) SetReadDeadline(time.Time) error  { return nil }
func (s *chanStream) SetWriteDeadline(time.Time) error { return nil }

// waitSplice waits for sp with a generous deadline.
func waitSplice(t *testing.T, sp *Splicer) (SpliceStats, error) {
	t.Helper()
	select {
	case <-sp.Done():
	case <-time.After(30 * time.Second):
		sp.Reset(CloseCancelled)
		t.Fatal("the splice did not end")
	}
	return sp.Wait()
}

// wantStalled checks that the splice ended with ErrStalled for reason and
// reset both streams with CloseTimeout stamped with hop 2.
func wantStalled(t *testing.T, err error, reason string, streams ...*chanStream) {
	t.Helper()
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("splice ended with %v, want ErrStalled (%s)", err, reason)
	}
	for i, s := range streams {
		if !s.wasReset() || s.code.Load() != atHop(CloseTimeout, 2) {
			t.Errorf("stream %d: reset %v with code %#x, want code %#x", i, s.wasReset(), s.code.Load(), atHop(CloseTimeout, 2))
		}
	}
}

// TestSpliceStallBound: a write the far reader never takes ends the splice
// once Stall ran out, not before, and resets both streams with
// CloseTimeout at the relay's hop.
func TestSpliceStallBound(t *testing.T) {
	const stall = 200 * time.Millisecond
	a, b := newChanStream(), newChanStream()
	b.block.Store(true)
	start := time.Now()
	sp := StartSpliceBounded(a, b, 0, SpliceBounds{Stall: stall, Hop: 2}, nil)
	a.in <- []byte("stuck")
	_, err := waitSplice(t, sp)
	if took := time.Since(start); took < stall {
		t.Errorf("the splice ended after %v, before its bound %v", took, stall)
	}
	wantStalled(t, err, "no progress", a, b)
}

// TestSpliceSlowWritesNotStalled: writes that each take less than Stall
// keep a splice alive however long they take together.
func TestSpliceSlowWritesNotStalled(t *testing.T) {
	const stall = time.Second
	a, b := newChanStream(), newChanStream()
	b.delay = 25 * time.Millisecond
	sp := StartSpliceBounded(a, b, 0, SpliceBounds{Stall: stall, Hop: 2}, nil)
	chunks := 3 * int(stall/b.delay) / 2 // 1.5 × Stall of writes in all
	go func() {
		for range chunks {
			a.in <- []byte("slow")
		}
		close(a.in)
		close(b.in)
	}()
	st, err := waitSplice(t, sp)
	if err != nil || st.Up != int64(4*chunks) {
		t.Fatalf("splice ended with %+v, %v; want %d bytes up and a clean end", st, err, 4*chunks)
	}
}

// TestSpliceHalfClosedBound: once one direction ended, the other ends
// the splice after HalfClosed of silence counted from the half-close,
// even when it was silent long before.
func TestSpliceHalfClosedBound(t *testing.T) {
	const half = 200 * time.Millisecond
	a, b := newChanStream(), newChanStream()
	b.delay = 20 * time.Millisecond
	// Stall keeps the watchdog looking while the up direction writes, so
	// it sees the down direction silent for longer than HalfClosed before
	// the half-close.
	sp := StartSpliceBounded(a, b, 0, SpliceBounds{Stall: time.Minute, HalfClosed: half, Hop: 2}, nil)
	for range 3 * int(half/b.delay) {
		a.in <- []byte("up")
	}
	for b.wrote.Load() < int64(2*3*int(half/b.delay)) {
		time.Sleep(time.Millisecond)
	}
	closed := time.Now()
	close(a.in)
	_, err := waitSplice(t, sp)
	if took := time.Since(closed); took < half {
		t.Errorf("the splice ended %v after the half-close, before its bound %v", took, half)
	}
	wantStalled(t, err, "half-closed", a, b)
}

// TestIdleBoundedSpliceRunsNoTimer: a bounded splice's watchdog runs only
// while there is something to watch; an idle relayed circuit holds no
// timer.
func TestIdleBoundedSpliceRunsNoTimer(t *testing.T) {
	a, b := newChanStream(), newChanStream()
	sp := StartSpliceBounded(a, b, 0, SpliceBounds{Stall: 100 * time.Millisecond, HalfClosed: time.Minute, Hop: 2}, nil)
	t.Cleanup(func() { sp.Reset(CloseCancelled) })
	timer := func() bool {
		sp.wd.mu.Lock()
		defer sp.wd.mu.Unlock()
		return sp.wd.timer != nil
	}
	if timer() {
		t.Fatal("a splice that copied nothing runs its watchdog")
	}
	a.in <- []byte("x")
	deadline := time.Now().Add(30 * time.Second)
	for b.wrote.Load() == 0 || timer() {
		if time.Now().After(deadline) {
			t.Fatalf("the watchdog still runs after the circuit went idle (wrote %d)", b.wrote.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if sp.watched.Load() {
		t.Error("the watchdog paused but is marked as running")
	}
	// It comes back with the next write.
	b.block.Store(true)
	a.in <- []byte("y")
	if _, err := waitSplice(t, sp); !errors.Is(err, ErrStalled) {
		t.Fatalf("a write stuck after a pause ended the splice with %v, want ErrStalled", err)
	}
}
