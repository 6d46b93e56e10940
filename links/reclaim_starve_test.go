package links

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// starvedReaders links a to b with the default windows (32 MiB link
// window, young streams counted at 512 KiB); probe and stall are both
// nodes' probe interval and ReaderStall. b's readers take each stream's first byte,
// then wait for gate (a reader that is not run: its process is starved)
// and read the rest of the payload, then wait in a Read for more as a
// relay's splice does. fill opens n streams on a, each carrying one
// byte and payload, and returns once b's readers hold them all at the
// gate.
type starvedReaders struct {
	a, b    *node
	la      Link
	lb      *quicLink
	resets  resetLog
	gate    chan struct{}
	held    chan struct{}
	read    atomic.Int64 // readers that got their whole payload
	failed  atomic.Int64 // readers whose stream failed before that
	payload int
}

func newStarvedReaders(t *testing.T, probe, stall time.Duration, payload int) *starvedReaders {
	t.Helper()
	r := &starvedReaders{gate: make(chan struct{}), held: make(chan struct{}, 1024), payload: payload}
	ca := testCA(t, "m")
	mod := func(c *QUICConfig) {
		tolerant(c)
		c.ProbeInterval = probe
		c.ProbeMisses = max(int(patience/probe), 4)
		c.ReaderStall = stall
		c.OnStalled = r.resets.note
	}
	r.a = newNode(t, issue(t, ca, "a"), mod)
	r.b = newNode(t, issue(t, ca, "b"), mod)
	r.la = dial(t, r.a, r.b)
	r.lb = acceptedLink(t, r.b, "a").(*quicLink)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { _ = r.a.Close() })
	wg.Go(func() {
		for {
			s, err := r.lb.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				defer s.Reset(0)
				var one [1]byte
				if _, err := io.ReadFull(s, one[:]); err != nil {
					r.failed.Add(1)
					return
				}
				r.held <- struct{}{}
				select {
				case <-r.gate:
				case <-r.lb.Done():
					return
				}
				if _, err := io.ReadFull(s, make([]byte, r.payload)); err != nil {
					r.failed.Add(1)
					return
				}
				r.read.Add(1)
				_, _ = io.Copy(io.Discard, s)
			})
		}
	})
	return r
}

func (r *starvedReaders) fill(t *testing.T, n int) {
	t.Helper()
	msg := make([]byte, 1+r.payload)
	msg[0] = 'x'
	for range n {
		s, err := r.la.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Reset(0) })
		_ = s.SetWriteDeadline(time.Now().Add(patience))
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case <-r.held:
		case <-time.After(patience):
			t.Fatalf("b's readers hold %d of %d streams", len(r.held), n)
		}
	}
}

// starvedTick runs b's reclaim pass at now, in a tick that ran late by
// late.
func starvedTick(l *quicLink, now time.Time, late time.Duration) { l.reclaim(now, late) }

// TestStarvedProcessKeepsItsHonestReaders: b's process is starved of
// CPU (each of its probe ticks runs 100 ms late) while 40 circuits
// resume at once; their readers, not run, take nothing for 3 s, then
// read all that waits as soon as they run. Each holds 65 bytes, but
// each young stream may hold 512 KiB, so together they may hold 20 MiB,
// more than half the 32 MiB link window, and they stalled for longer
// than ReaderStall (2 s). The reclaim, driven tick by tick, resets none
// of them: the lateness of b's own ticks extends what a reader may take
// to read, as b's readers are as late as its ticks.
func TestStarvedProcessKeepsItsHonestReaders(t *testing.T) {
	const (
		n        = 40
		tick     = DefaultProbeInterval
		late     = 100 * time.Millisecond
		starving = 3 * time.Second
	)
	r := newStarvedReaders(t, time.Hour, DefaultReaderStall, 64) // the test drives b's ticks
	r.fill(t, n)
	now := time.Now()
	ticks := 0
	for ; time.Duration(ticks)*tick < starving; ticks++ {
		now = now.Add(tick)
		starvedTick(r.lb, now, late)
	}
	stalled := r.b.StalledStreams()
	t.Logf("after %d ticks of %v, each %v late: %d of %d starved readers reset as stalled", ticks, tick, late, stalled, n)
	close(r.gate)
	waitFor(t, "the readers that were not reset to read", patience, func() bool {
		return r.read.Load()+r.failed.Load() == n
	})
	// The readers now wait in a Read: no tick counts them again.
	for range int(2*DefaultReaderStall/tick) + 2 {
		now = now.Add(tick)
		starvedTick(r.lb, now, late)
	}
	if stalled := r.b.StalledStreams(); stalled != 0 || r.read.Load() != n {
		t.Fatalf("%d of %d honest readers of a starved process reset as stalled (%d read all, bounds reset %v)", stalled, n, r.read.Load(), r.resets.list())
	}
}

// TestStarvedProcessStillReclaimsReadersThatNeverRead: b's ticks run
// later than their interval (300 ms late each 200 ms), as a process that
// a peer keeps busy might; a peer's 40 streams, each holding 65 bytes
// and counted at 512 KiB, are never read. They are reset all the same,
// once they stalled for stallLateCap × ReaderStall (8 s), until the rest
// fit in half the window.
func TestStarvedProcessStillReclaimsReadersThatNeverRead(t *testing.T) {
	const (
		n    = 40
		tick = DefaultProbeInterval
		late = 300 * time.Millisecond
	)
	r := newStarvedReaders(t, time.Hour, DefaultReaderStall, 64) // the gate never opens
	r.fill(t, n)
	capped := stallLateCap * DefaultReaderStall
	now := time.Now()
	ticks := 0
	for r.b.StalledStreams() == 0 {
		if time.Duration(ticks)*tick > capped+2*tick {
			t.Fatalf("no stream that never reads reset after %v of %v ticks, each %v late", time.Duration(ticks)*tick, tick, late)
		}
		ticks++
		now = now.Add(tick)
		starvedTick(r.lb, now, late)
	}
	half := r.lb.t.cfg.LinkWindow / 2
	t.Logf("reset %d of %d streams that never read after %v of %v ticks, each %v late; the rest may hold %d bytes, half the window %d",
		r.b.StalledStreams(), n, time.Duration(ticks)*tick, tick, late, r.lb.scan.sum, half)
	if r.lb.scan.sum > half {
		t.Fatalf("the streams left may hold %d bytes, more than half the window (%d)", r.lb.scan.sum, half)
	}
	if r.read.Load() != 0 {
		t.Fatalf("%d readers read past the gate", r.read.Load())
	}
}

// TestProcessFrozenPastReaderStallKeepsItsReaders runs b's probe loop on
// its own clock: a test that holds the link's reclaim queue lock stops
// b's pass as a process descheduled for 4 s would (its readers, held
// too, take nothing meanwhile), with ReaderStall 4 s and 40 streams that
// may hold 20 MiB of the 32 MiB window. The first tick after the freeze
// runs about 4 s late and says so; the readers, let go 300 ms later,
// read, and none was reset.
func TestProcessFrozenPastReaderStallKeepsItsReaders(t *testing.T) {
	const (
		n      = 40
		freeze = 4 * time.Second
	)
	r := newStarvedReaders(t, DefaultProbeInterval, freeze, 64)
	r.fill(t, n)
	// A few ticks see the readers stop before the freeze.
	time.Sleep(3 * DefaultProbeInterval)
	r.lb.cmu.Lock()
	time.Sleep(freeze)
	r.lb.cmu.Unlock()
	time.Sleep(300 * time.Millisecond)
	stalled := r.b.StalledStreams()
	close(r.gate)
	waitFor(t, "the readers that were not reset to read", patience, func() bool {
		return r.read.Load()+r.failed.Load() == n
	})
	t.Logf("frozen %v with ReaderStall %v: %d of %d readers reset as stalled before they ran, %d read all", freeze, freeze, stalled, n, r.read.Load())
	if stalled != 0 || r.read.Load() != n {
		t.Fatalf("%d of %d readers of a frozen process reset as stalled (%d read all)", stalled, n, r.read.Load())
	}
}
