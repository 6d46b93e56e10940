package links

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNonReadingStreamsDoNotStarveLink opens 1,000 streams to an echoing
// peer that write without ever reading their replies, so that every one of
// them fills its stream window in both directions, or is reset as stalled
// (DefaultStalledCode) once the stalled streams could hold more than half
// the link window. The link must stay up and the control stream and a
// fresh stream must keep flowing: credit held by stalled streams never
// starves the connection (quicLink.reclaim).
func TestNonReadingStreamsDoNotStarveLink(t *testing.T) {
	streams := int64(1000)
	if testing.Short() {
		streams = 200
	}
	const (
		window = 32 << 10
		// fill is written by a stream once the echo returned data: both
		// directions then hold credit (a stream stalls at about 2 windows).
		fill = window * 3 / 2
	)
	// Probes every 500 ms instead of the default 200 ms: under -race on a
	// loaded 2-core machine an answer came 1 s late with no fault (the
	// link declared dead after 4 missed probes), while a control stream
	// the flood starved would not answer at all.
	const probe = 500 * time.Millisecond
	small := func(c *QUICConfig) { c.MaxStreamWindow = window; c.ProbeInterval = probe }
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), small)
	b := newNode(t, issue(t, ca, "b"), small)
	la := dial(t, a, b)
	lb := acceptedLink(t, b, "a")
	defer echo(lb)()
	defer a.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		wg      sync.WaitGroup
		full    atomic.Int64 // streams that wrote more than their windows hold one way
		stalled atomic.Int64 // flood streams reset as stalled
		failed  atomic.Int64 // flood streams that failed otherwise before the end
		firstMu sync.Mutex
		first   error // the first of those failures
		stopped = make(chan struct{})
	)
	var flood []Stream
	for range int(streams) {
		s, err := la.OpenStream(ctx)
		if err != nil {
			t.Fatalf("open flood stream %d: %v", len(flood), err)
		}
		flood = append(flood, s)
		wg.Go(func() {
			buf := make([]byte, 8<<10)
			var sent int
			for {
				n, err := s.Write(buf)
				sent += n
				if sent >= fill && sent-n < fill {
					full.Add(1)
				}
				if err != nil {
					var re *StreamResetError
					select {
					case <-stopped:
					default:
						if errors.As(err, &re) && re.Code == DefaultStalledCode {
							stalled.Add(1)
						} else {
							failed.Add(1)
							firstMu.Lock()
							if first == nil {
								first = err
							}
							firstMu.Unlock()
						}
					}
					return
				}
			}
		})
	}
	waitFor(t, "every flood stream to fill its windows", 2*time.Minute, func() bool {
		return full.Load()+stalled.Load() >= streams || failed.Load() > 0
	})

	// Keep working on the link for three detection windows while the
	// flood holds its credit: routing both ways and echoes on new streams.
	deadAfter := time.Duration(DefaultProbeMisses) * probe
	until := time.Now().Add(3 * deadAfter)
	var rounds, routed int
	for time.Now().Before(until) || rounds < 10 {
		if err := la.SendRouting([]byte{byte(rounds)}); err != nil {
			t.Fatalf("round %d: send routing: %v", rounds, err)
		}
		b.rec.waitEvent(t, "routing", 10*time.Second)
		routed++
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := roundTrip(rctx, la, rounds, 64<<10)
		rcancel()
		if err != nil {
			t.Fatalf("round %d during the flood: %v", rounds, err)
		}
		rounds++
	}
	close(stopped)
	t.Logf("%d streams flooding (%d reset as stalled); %d echoes of 64 KiB and %d routing frames went through", full.Load(), stalled.Load(), rounds, routed)
	if n := failed.Load(); n != 0 {
		firstMu.Lock()
		defer firstMu.Unlock()
		t.Fatalf("%d flood streams failed while the link should be up, the first with: %v", n, first)
	}
	if _, downs := a.rec.counts(); downs != 0 || la.Err() != nil {
		t.Fatalf("link went down under the flood: %v", la.Err())
	}
	if _, downs := b.rec.counts(); downs != 0 {
		t.Fatalf("peer saw the link go down: %v", lb.Err())
	}
	if got, want := la.OpenStreams(), int(streams-stalled.Load()); got < want {
		t.Fatalf("%d streams open, want the %d flood streams not reset still up", got, want)
	}
	for _, s := range flood {
		s.Reset(0)
	}
	wg.Wait()
	if err := la.Err(); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// TestResetKeepsItsCodeWhenItsWriterCloses: a stream whose write is
// blocked (its peer reads nothing) is reset with the stalled code, and
// the writer, woken by the reset's write side, closes the stream as a
// circuit's splice (or an echo) does on a write error. The peer's writer
// must see the reset's code. Before, the writer's close could cancel the
// read side with code 0 between Reset's two cancels (Reset ran them
// unlocked), so the peer saw a reset with code 0: a flood stream of
// TestNonReadingStreamsDoNotStarveLink then counted as failed. Reset here
// waits between its two cancels until the writer is closing.
func TestResetKeepsItsCodeWhenItsWriterCloses(t *testing.T) {
	small := func(c *QUICConfig) { c.MaxStreamWindow = 32 << 10 }
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), small)
	b := newNode(t, issue(t, ca, "b"), small)
	la := dial(t, a, b)
	lb := acceptedLink(t, b, "a")
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()

	sa, err := la.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	aerr := make(chan error, 1)
	go func() { // a writes and never reads
		buf := make([]byte, 8<<10)
		for {
			if _, err := sa.Write(buf); err != nil {
				aerr <- err
				return
			}
		}
	}()
	sb, err := lb.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closing := make(chan struct{})
	writerDone := make(chan struct{})
	go func() { // b reads nothing more and writes until the reset
		defer close(writerDone)
		_, _ = sb.Write(make([]byte, 1<<20))
		close(closing)
		_ = sb.Close()
	}()
	gap := func() {
		select {
		case <-closing:
			time.Sleep(50 * time.Millisecond) // the writer's Close runs now, or waits for Reset
		case <-ctx.Done():
		}
	}
	resetGap.Store(&gap)
	t.Cleanup(func() { resetGap.Store(nil) })
	sb.Reset(DefaultStalledCode)
	resetGap.Store(nil)
	<-writerDone

	select {
	case err := <-aerr:
		var re *StreamResetError
		if !errors.As(err, &re) || re.Code != DefaultStalledCode {
			t.Fatalf("the peer's writer saw %v, want a reset with code %d", err, DefaultStalledCode)
		}
	case <-ctx.Done():
		t.Fatal("the peer's writer saw no reset")
	}
}
