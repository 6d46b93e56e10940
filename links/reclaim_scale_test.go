package links

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReclaimWorkBoundedWithIdleStreams: b holds 10,000 idle streams
// whose readers wait in a Read, and two streams whose readers stopped
// with bytes waiting. The reclaim pass, driven tick by tick, examines at
// most maxScan+maxPops streams per tick and, once it has seen the idle
// readers parked, only the streams outside a Read. Then one idle reader
// takes a byte and stops with more waiting: within a few ticks it is
// counted, the three stalled streams exceed half the window, and the
// longest stalled is reset. No idle stream is ever reset.
func TestReclaimWorkBoundedWithIdleStreams(t *testing.T) {
	idleN := 10_000
	if testing.Short() {
		idleN = 2_000
	}
	const (
		tick  = 200 * time.Millisecond
		stall = 300 * time.Millisecond
	)
	ca := testCA(t, "m")
	var resets resetLog
	mod := func(c *QUICConfig) {
		c.MaxStreams = idleN + 64
		c.MaxStreamWindow = 64 << 10 // each stalled stream may hold 64 KiB
		c.LinkWindow = 256 << 10     // the stalled fit in 128 KiB: two do, three do not
		c.ReaderStall = stall
		// The test drives b's reclaim pass itself: the probe loop never
		// ticks.
		c.ProbeInterval = time.Hour
		c.OnStalled = resets.note
	}
	a := newNode(t, issue(t, ca, "a"), mod)
	b := newNode(t, issue(t, ca, "b"), mod)
	la := dial(t, a, b)
	lb := acceptedLink(t, b, "a").(*quicLink)

	// b's readers: an idle one ('i') reads a byte at a time until it reads
	// 's', then waits for more and stops; a stalled one ('x') reads its
	// first byte, waits for more and stops.
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		idle      []*quicStream
		idleErrs  atomic.Int64 // idle readers that failed before the end
		stopped   = make(chan *quicStream, 4)
		end       = make(chan struct{})
		endedOnce sync.Once
	)
	finish := func() { endedOnce.Do(func() { close(end) }) }
	defer wg.Wait()
	defer finish()
	defer a.Close()
	wg.Go(func() {
		for {
			st, err := lb.AcceptStream(context.Background())
			if err != nil {
				return
			}
			s := st.(*quicStream)
			wg.Go(func() {
				defer s.Reset(0)
				var one [1]byte
				if _, err := io.ReadFull(s, one[:]); err != nil {
					return
				}
				if one[0] == 'i' {
					mu.Lock()
					idle = append(idle, s)
					mu.Unlock()
					for one[0] != 's' {
						if _, err := io.ReadFull(s, one[:]); err != nil {
							select {
							case <-end:
							default:
								idleErrs.Add(1)
							}
							return
						}
					}
				}
				if _, err := s.Peek(one[:]); err != nil {
					return
				}
				stopped <- s
				<-end
			})
		}
	})

	streams := make([]Stream, 0, idleN)
	for range idleN {
		s, err := la.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset(0)
		if _, err := s.Write([]byte("i")); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	waitFor(t, "the idle readers parked in a Read", time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(idle) < idleN {
			return false
		}
		for _, s := range idle {
			if s.reading.Load() == 0 {
				return false
			}
		}
		return true
	})
	fill := append([]byte("x"), bytes.Repeat([]byte("x"), 16<<10)...)
	for range 2 {
		s, err := la.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset(0)
		if _, err := s.Write(fill); err != nil {
			t.Fatal(err)
		}
	}
	old := []*quicStream{<-stopped, <-stopped}

	now := time.Now()
	ticks := 0
	step := func() {
		t.Helper()
		ticks++
		now = now.Add(tick)
		lb.reclaim(now, 0)
		if n := lb.scan.scanned; n > maxScan+maxPops {
			t.Fatalf("tick %d examined %d streams, more than %d", ticks, n, maxScan+maxPops)
		}
	}
	// One pass over the list takes the idle readers off it; then a tick
	// examines the two stalled streams only.
	passes := (idleN+2)/maxScan + 1
	for step(); lb.scan.scanned > 2; step() {
		if ticks > passes {
			t.Fatalf("after %d ticks a tick still examines %d streams (%d watched) with %d idle readers parked", ticks, lb.scan.scanned, len(lb.scan.watch), idleN)
		}
	}
	aside := ticks
	for range int(stall/tick) + 2 {
		step() // the two stalled streams are counted: they fit in half the window
	}
	if n := b.StalledStreams(); n != 0 {
		t.Fatalf("%d streams reset while the stalled ones fit in half the window", n)
	}
	if lb.scan.counted.Len() != 2 || lb.scan.sum != 2*(64<<10) {
		t.Fatalf("%d streams counted as stalled, holding at most %d bytes; want the 2 stalled ones, 128 KiB", lb.scan.counted.Len(), lb.scan.sum)
	}
	t.Logf("%d ticks to leave %d idle readers aside; a tick now examines %d streams", aside, idleN, lb.scan.scanned)

	// An idle reader stops with bytes waiting.
	victim := streams[idleN/2]
	if _, err := victim.Write(append([]byte("s"), fill...)); err != nil {
		t.Fatal(err)
	}
	third := <-stopped
	start := ticks
	for b.StalledStreams() == 0 {
		if ticks-start > int(stall/tick)+3 {
			t.Fatalf("a stalled stream among %d idle ones not reset %d ticks after it stalled", idleN, ticks-start)
		}
		step()
		if lb.scan.scanned > 2*3 {
			t.Fatalf("a tick examined %d streams with 3 readers outside a Read", lb.scan.scanned)
		}
	}
	t.Logf("reset %d ticks after a third reader stalled", ticks-start)
	if old[0].done.Load()&doneRead == 0 && old[1].done.Load()&doneRead == 0 {
		t.Fatal("the longest stalled streams were not the one reset")
	}
	if third.done.Load()&doneRead != 0 {
		t.Fatal("the stream stalled last was reset before one stalled longer")
	}
	if n := b.StalledStreams(); n != 1 {
		t.Fatalf("%d streams reset, want 1 (the rest fit in half the window)", n)
	}
	// The reset stream leaves the watch list at the next tick.
	step()
	if n := len(lb.scan.watch); n != 2 {
		t.Fatalf("%d streams watched after the reset, want the 2 stalled ones left", n)
	}
	if n := idleErrs.Load(); n != 0 {
		t.Fatalf("%d idle readers failed", n)
	}
	if got := resets.list(); len(got) != 1 || got[0] != 64<<10 {
		t.Fatalf("reset streams holding at most %v bytes, want one of 64 KiB", got)
	}
}

// resetLog records the bounds of the streams a transport reset as stalled
// (QUICConfig.OnStalled).
type resetLog struct {
	mu     sync.Mutex
	bounds []uint64
}

func (r *resetLog) note(_ string, unread uint64) {
	r.mu.Lock()
	r.bounds = append(r.bounds, unread)
	r.mu.Unlock()
}

func (r *resetLog) list() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bounds)
}
