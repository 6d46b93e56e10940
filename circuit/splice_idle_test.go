package circuit

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// idleStream has nothing to read until it is closed; Peek and Read block
// until then. It counts the calls waiting.
type idleStream struct {
	closed  chan struct{}
	once    sync.Once
	waiting *atomic.Int64
}

func newIdleStream(waiting *atomic.Int64) *idleStream {
	return &idleStream{closed: make(chan struct{}), waiting: waiting}
}

func (s *idleStream) Peek(p []byte) (int, error) { return s.wait() }
func (s *idleStream) Read(p []byte) (int, error) { return s.wait() }

func (s *idleStream) wait() (int, error) {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	<-s.closed
	return 0, io.EOF
}

func (s *idleStream) Write(p []byte) (int, error)      { return len(p), nil }
func (s *idleStream) CloseWrite() error                { return nil }
func (s *idleStream) CloseRead(uint64)                 { s.end() }
func (s *idleStream) Reset(uint64)                     { s.end() }
func (s *idleStream) Close() error                     { s.end(); return nil }
func (s *idleStream) SetDeadline(time.Time) error      { return nil }
func (s *idleStream) SetReadDeadline(time.Time) error  { return nil }
func (s *idleStream) SetWriteDeadline(time.Time) error { return nil }
func (s *idleStream) end()                             { s.once.Do(func() { close(s.closed) }) }

func memInUse() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, runtime.NumGoroutine()
}

// TestIdleSpliceHoldsNoBuffer checks what an idle relayed circuit costs:
// over streams that can peek, Splice holds no copy buffer while nothing
// arrives (a buffer per direction would be 64 KiB), and it runs one
// direction in the caller's goroutine.
func TestIdleSpliceHoldsNoBuffer(t *testing.T) {
	const n = 500
	var waiting atomic.Int64
	streams := make([]*idleStream, 0, 2*n)
	mem0, g0 := memInUse()
	var wg sync.WaitGroup
	for range n {
		a, b := newIdleStream(&waiting), newIdleStream(&waiting)
		streams = append(streams, a, b)
		wg.Go(func() {
			if _, err := Splice(a, b, 0); err != nil {
				t.Error(err)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for waiting.Load() < 2*n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d directions waiting for data", waiting.Load(), 2*n)
		}
		time.Sleep(time.Millisecond)
	}
	mem1, g1 := memInUse()
	perSplice := (float64(mem1) - float64(mem0)) / n
	goroutines := float64(g1-g0) / n
	t.Logf("idle splice: %.0f bytes, %.2f goroutines (the caller's included)", perSplice, goroutines)
	if perSplice > 12<<10 {
		t.Errorf("an idle splice holds %.0f bytes, want no copy buffers (< 12 KiB)", perSplice)
	}
	if goroutines > 2.01 {
		t.Errorf("an idle splice runs %.2f goroutines, want 2 (the caller's and one more)", goroutines)
	}
	for _, s := range streams {
		s.end()
	}
	wg.Wait()
}

// TestStartSpliceBoundedRunsDoneOnce: a relay that hands its circuit to
// StartSpliceBounded keeps no goroutine of its own (two per idle splice),
// and done runs once per splice when both directions have ended.
func TestStartSpliceBoundedRunsDoneOnce(t *testing.T) {
	const n = 200
	var waiting atomic.Int64
	calls := make([]atomic.Int64, n)
	var finished atomic.Int64
	streams := make([]*idleStream, 0, 2*n)
	_, g0 := memInUse()
	for i := range n {
		a, b := newIdleStream(&waiting), newIdleStream(&waiting)
		streams = append(streams, a, b)
		StartSpliceBounded(a, b, 0, SpliceBounds{}, func(st SpliceStats, err error) {
			if err != nil || st != (SpliceStats{}) {
				t.Errorf("splice %d done with %+v, %v; want nothing copied and a clean end", i, st, err)
			}
			calls[i].Add(1)
			finished.Add(1)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for waiting.Load() < 2*n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d directions waiting for data", waiting.Load(), 2*n)
		}
		time.Sleep(time.Millisecond)
	}
	if _, g1 := memInUse(); float64(g1-g0)/n > 2.01 {
		t.Errorf("an idle splice runs %.2f goroutines, want 2", float64(g1-g0)/n)
	}
	for _, s := range streams {
		s.end()
	}
	for finished.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("done ran for %d of %d splices", finished.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Errorf("done ran %d times for splice %d", c, i)
		}
	}
}
