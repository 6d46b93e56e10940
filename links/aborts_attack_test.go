package links

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// openHeader stands for a circuit's open header in these tests: a stream
// that carries it whole is named (SetSource), as node names every stream
// whose header it read and checked.
var openHeader = []byte("OPEN")

// opener serves the streams a peer opens on the links of a transport as
// node does: it reads an open header from each (within a deadline) and
// names the stream's source once it has, echoing the rest; a stream that
// ends before its header is complete, or carries another, is refused
// with one byte and closed (Reset if that fails).
type opener struct {
	*recorder
	opens atomic.Int64 // streams that carried a whole header
	wg    sync.WaitGroup

	mu       sync.Mutex
	accepted map[string]int64 // streams accepted, by peer
}

func newOpener() *opener { return &opener{recorder: newRecorder(), accepted: make(map[string]int64)} }

func (o *opener) LinkUp(l Link) {
	o.recorder.LinkUp(l)
	o.wg.Go(func() {
		for {
			s, err := l.AcceptStream(context.Background())
			if err != nil {
				return
			}
			o.mu.Lock()
			o.accepted[l.Peer()]++
			o.mu.Unlock()
			o.wg.Go(func() { o.serve(l, s) })
		}
	})
}

// acceptedFrom is the number of streams peer opened that were accepted.
func (o *opener) acceptedFrom(peer string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.accepted[peer]
}

func (o *opener) serve(l Link, s Stream) {
	var hdr [4]byte
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadFull(s, hdr[:])
	_ = s.SetReadDeadline(time.Time{})
	if err != nil || string(hdr[:]) != string(openHeader) {
		if _, err := s.Write([]byte{1}); err != nil {
			s.Reset(1)
			return
		}
		_ = s.Close()
		return
	}
	SetSource(s, ProvenSource(l.Peer()))
	o.opens.Add(1)
	_, _ = io.Copy(s, s)
	_ = s.Close()
}

// roundTripOpen opens a stream on l, sends the open header and size bytes,
// and checks they come back.
func roundTripOpen(ctx context.Context, l Link, size int) error {
	s, err := l.OpenStream(ctx)
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	msg := append(append([]byte(nil), openHeader...), make([]byte, size)...)
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(msg)
		if err == nil {
			err = s.CloseWrite()
		}
		errc <- err
	}()
	got, rerr := io.ReadAll(s)
	if werr := <-errc; werr != nil {
		s.Reset(0)
		return werr
	}
	if rerr != nil {
		return rerr
	}
	if len(got) != size {
		return errors.New("echo short")
	}
	return nil
}

// abortFlood opens streams on l from workers goroutines and ends each
// without a whole open header, in turn: reset with nothing sent, reset
// after half a header, closed empty. It stops when stop is closed, after
// max streams, or when l is down, and returns how many it opened.
func abortFlood(l Link, workers int, max int64, stop <-chan struct{}) int64 {
	var opened atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-l.Done():
		case <-ctx.Done():
		}
		cancel()
	}()
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := opened.Add(1)
				if n > max {
					opened.Add(-1)
					cancel()
					return
				}
				s, err := l.OpenStream(ctx)
				if err != nil {
					opened.Add(-1)
					return
				}
				switch n % 3 {
				case 0:
					s.Reset(0)
				case 1:
					_, _ = s.Write(openHeader[:2])
					s.Reset(0)
				default:
					_ = s.Close()
				}
			}
		})
	}
	wg.Wait()
	return opened.Load()
}

// TestAttackStreamsResetAtAnyRate: m, a peer with a valid certificate,
// opens streams on its link to n as fast as it can and ends each before
// its open header is complete (reset before or during it, or empty),
// never holding more than MaxStreams open; when n closes the link, m
// redials at once, and again until n takes the link, and floods again.
// h, an honest neighbour of n, makes round trips on its own link
// meanwhile. Before the budget n accepted and served every stream m
// opened, 16,384 in a row, and kept the link. Now n closes m's link once
// m is beyond its budget (here 256, refilled at 32 a second), with an
// error wrapping ErrStreamAborts at both ends and one WARN line, refuses
// m's links until the bucket is full again, and what it accepted from m
// over both links stays within the bucket for the time the attack took.
// A link that QUIC's idle timeout ended (in a process starved beside busy
// loops, n's close of m's link never reached m, which heard nothing more
// from n for 10 s) leaves the test nothing to judge: the attack runs
// again on new nodes, at most idleTries times in all.
func TestAttackStreamsResetAtAnyRate(t *testing.T) {
	againOnIdle(t, "the attack", attackStreamsReset)
}

// attackStreamsReset runs TestAttackStreamsResetAtAnyRate's attack on new
// nodes. It returns the error of a link QUIC's idle timeout ended
// (idleLost) and fails t on anything else.
func attackStreamsReset(t *testing.T) error {
	ca := testCA(t, "m")
	srv := newOpener()
	var logs lockedBuffer
	const budget = 256
	n := newNode(t, issue(t, ca, "n"), func(c *QUICConfig) {
		tolerant(c)
		c.Handler = srv
		c.StreamAborts = budget
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.OnRefused = nil
	})
	defer srv.wg.Wait()
	defer n.Close()
	m := newNode(t, issue(t, ca, "m"), tolerant)
	defer m.Close()
	h := newNode(t, issue(t, ca, "h"), tolerant)
	defer h.Close()
	lh := dial(t, h, n)

	stop := make(chan struct{})
	var trips, slowest atomic.Int64
	herr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				herr <- nil
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			start := time.Now()
			err := roundTripOpen(ctx, lh, 1024)
			cancel()
			if err != nil {
				herr <- err
				return
			}
			trips.Add(1)
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			<-herr
		}
	}()

	// Without the budget n serves every stream: flood stops m after
	// 16,384 streams on a link (64 times the budget).
	const flood = 16384
	const links = 2
	cpu0, start := processCPU(), time.Now()
	var opened int64
	refusals := 0
	for i := range links {
		var lm Link
		for lm == nil {
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			l, err := m.Dial(ctx, n.LocalAddr().String())
			cancel()
			switch {
			case err == nil:
				lm = l
			case i > 0 && errors.Is(err, ErrRefused) && strings.Contains(err.Error(), "ended too many streams without an open"):
				refusals++
				if time.Since(start) > patience {
					t.Fatalf("n still refuses m's links %v after the attack started: %v", patience, err)
				}
				time.Sleep(250 * time.Millisecond)
			default:
				t.Fatalf("m's dial %d: %v", i+1, err)
			}
		}
		waitFor(t, "n's link to m", patience, func() bool { l := n.Link("m"); return l != nil && l.Err() == nil })
		ln := n.Link("m")
		c0, t0 := processCPU(), time.Now()
		o := abortFlood(lm, 4, flood, nil)
		opened += o
		t.Logf("link %d: m opened %d streams in %v, process CPU %v", i+1, o, time.Since(t0).Round(time.Millisecond), (processCPU() - c0).Round(time.Millisecond))
		select {
		case <-ln.Done():
		case <-time.After(patience):
			t.Fatalf("link %d: m opened %d streams, each ended without an open, and n's link to m is still up after %v (n accepted %d of m's streams so far)",
				i+1, o, patience, srv.acceptedFrom("m"))
		}
		if err := ln.Err(); !errors.Is(err, ErrStreamAborts) || !errors.Is(err, ErrLinkLost) {
			t.Fatalf("link %d: n's link to m ended with %v, want ErrLinkLost and ErrStreamAborts", i+1, err)
		}
		waitFor(t, "m's link to end", patience, func() bool { return lm.Err() != nil })
		if err := lm.Err(); idleLost(err) {
			return err
		} else if !errors.Is(err, ErrStreamAborts) {
			t.Fatalf("link %d: m's link to n ended with %v, want ErrStreamAborts (close code 0x106)", i+1, err)
		}
		t.Logf("link %d: m opened %d streams before n closed it (n accepted %d of m's so far): %v", i+1, o, srv.acceptedFrom("m"), ln.Err())
	}
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	close(stop)
	if err := <-herr; idleLost(err) {
		return err
	} else if err != nil {
		t.Fatalf("h's round trip on its own link failed during the attack: %v", err)
	}
	accepted := srv.acceptedFrom("m")
	t.Logf("over %d links m opened %d streams in %v (%d dials refused between), n accepted %d; process CPU %v; h made %d round trips meanwhile, slowest %v",
		links, opened, elapsed.Round(time.Millisecond), refusals, accepted, cpu.Round(time.Millisecond),
		trips.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
	if refusals == 0 {
		t.Errorf("n took m's link again at once after closing it for its streams, want it refused until m's bucket is full")
	}
	// What an operator sees: each link closed and each dial refused.
	if st := n.StreamAbortStats(); st.Closed != links || st.Refused != uint64(refusals) {
		t.Errorf("n counts %d links closed and %d refused for streams ended without an open, want the %d m's links ended with and the %d dials m saw refused",
			st.Closed, st.Refused, links, refusals)
	}
	// The bucket: budget tokens and budget/8 a second, kept across m's
	// links; a stream is accepted only with a token for it. Streams
	// accepted and not yet ended when n closes a link end with the link
	// and take no token, as an honest peer's would at a link loss: a few
	// more per link closed (537 accepted against 534 in one run beside
	// two busy loops), hence abortSlack each.
	const abortSlack = 16
	bound := int64(budget) + int64(elapsed.Seconds()*budget/8) + 1 + links*abortSlack
	if accepted > bound {
		t.Errorf("n accepted %d streams of m's, each ended without an open, over %d links in %v: more than the budget allows (%d)",
			accepted, links, elapsed.Round(time.Millisecond), bound)
	}
	if got := strings.Count(logs.String(), "closing link: peer ends too many streams without an open"); got != 1 {
		t.Errorf("n wrote %d WARN lines for the %d links it closed within a minute, want 1:\n%s", got, links, logs.String())
	}
	return nil
}

// TestHonestBurstOfCancelledOpensKeepsTheLink: with the default budget, h
// opens 1,024 streams at once and cancels each right away (before or
// during its header, as an application that gives up on circuits it just
// opened does), then 1,024 whole opens at once, then 1,024 cancelled ones
// again. n counts the 2,048 cancelled streams against h's budget and
// keeps the link; every whole open carries its bytes. A link that QUIC's
// idle timeout ended (10 s without a packet: a process starved beside
// busy loops, where n heard nothing from h during the 1,024 whole opens)
// is no judgement of the budget: the bursts run again on a new link, as a
// node dials a lost link again, at most idleTries times.
func TestHonestBurstOfCancelledOpensKeepsTheLink(t *testing.T) {
	againOnIdle(t, "the bursts", honestBursts)
}

// idleTries bounds the tries of a test that runs again when QUIC's idle
// timeout ended a link under it.
const idleTries = 3

// againOnIdle runs try, on new nodes each time, until it returns nil, as
// long as it returns a link QUIC's idle timeout ended (idleLost), at most
// idleTries times; try fails t on anything else.
func againOnIdle(t *testing.T, what string, try func(*testing.T) error) {
	for i := 1; ; i++ {
		err := try(t)
		if err == nil {
			return
		}
		if i == idleTries {
			t.Fatalf("in each of %d tries a link ended at QUIC's idle timeout during %s, the last: %v", i, what, err)
		}
		t.Logf("try %d: a link ended at QUIC's idle timeout during %s (%v); %s again on new nodes", i, what, err, what)
	}
}

// idleLost reports whether err is a link QUIC's idle timeout ended, not
// the stream-abort budget.
func idleLost(err error) bool {
	var idle *quic.IdleTimeoutError
	return errors.As(err, &idle) && !errors.Is(err, ErrStreamAborts)
}

// honestBursts runs TestHonestBurstOfCancelledOpensKeepsTheLink's bursts
// on a new pair of nodes. It returns the error of a link QUIC's idle
// timeout ended (idleLost) and fails t on anything else.
func honestBursts(t *testing.T) error {
	ca := testCA(t, "m")
	srv := newOpener()
	n := newNode(t, issue(t, ca, "n"), func(c *QUICConfig) { tolerant(c); c.Handler = srv })
	defer srv.wg.Wait()
	defer n.Close()
	h := newNode(t, issue(t, ca, "h"), tolerant)
	defer h.Close()
	lh := dial(t, h, n)
	waitFor(t, "n's link to h", patience, func() bool { return n.Link("h") != nil })
	ln := n.Link("h").(*quicLink)

	const burst = 1024
	cancelled := func(round int) error {
		var wg sync.WaitGroup
		errs := make(chan error, burst)
		for i := range burst {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), patience)
				defer cancel()
				s, err := lh.OpenStream(ctx)
				if err != nil {
					errs <- err
					return
				}
				if i%2 == 1 {
					_, _ = s.Write(openHeader[:2])
				}
				s.Reset(0)
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if idleLost(err) {
				return err
			}
			t.Fatalf("round %d: open: %v", round, err)
		}
		return nil
	}
	if err := cancelled(1); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	for range burst {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
			defer cancel()
			if err := roundTripOpen(ctx, lh, 512); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if idleLost(ln.Err()) {
			return ln.Err()
		}
		t.Fatalf("whole open: %v (n's link: %v)", err, ln.Err())
	}
	if err := cancelled(2); err != nil {
		return err
	}
	waitFor(t, "n to count the cancelled streams", patience, func() bool { return ln.unopenedN.Load() >= 2*burst || ln.Err() != nil })
	if err := ln.Err(); idleLost(err) {
		return err
	} else if err != nil {
		t.Fatalf("n's link to h ended after h's honest bursts: %v", err)
	}
	if got := ln.unopenedN.Load(); got != 2*burst {
		t.Fatalf("n counted %d streams ended without an open, want the %d h cancelled", got, 2*burst)
	}
	if got := srv.opens.Load(); got != burst {
		t.Fatalf("n read %d whole opens, want %d", got, burst)
	}
	if st := n.StreamAbortStats(); st != (StreamAbortStats{}) {
		t.Fatalf("n counts %d links closed and %d refused for streams ended without an open after h's honest bursts, want none", st.Closed, st.Refused)
	}
	return nil
}

// TestStreamAbortsDefault: zero means the larger of 4,096 and MaxStreams,
// refilled at an eighth of it a second; a negative budget is refused.
func TestStreamAbortsDefault(t *testing.T) {
	if got := (QUICConfig{}).withDefaults().StreamAborts; got != 4096 {
		t.Fatalf("StreamAborts zero: %d, want the default 4096", got)
	}
	if got := (QUICConfig{MaxStreams: 16}).withDefaults().StreamAborts; got != 4096 {
		t.Fatalf("StreamAborts zero with MaxStreams 16: %d, want the default 4096", got)
	}
	if got := (QUICConfig{MaxStreams: 10_000}).withDefaults().StreamAborts; got != 10_000 {
		t.Fatalf("StreamAborts zero with MaxStreams 10,000: %d, want MaxStreams", got)
	}
	ca := testCA(t, "m")
	n := newNode(t, issue(t, ca, "n"), nil)
	if a := n.aborts; a.burst != 4096 || a.rate != 512 {
		t.Fatalf("default budget: burst %v, %v a second, want 4096 and 512", a.burst, a.rate)
	}
	cfg := QUICConfig{Identity: issue(t, ca, "a"), Handler: newRecorder(), StreamAborts: -1}
	if _, err := NewQUICTransport(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("StreamAborts -1: %v, want ErrConfig", err)
	}
}
