package links

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// echo serves every circuit stream of l by copying it back, until the link
// ends. It returns a wait function.
func echo(l Link) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			s, err := l.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				_, _ = io.Copy(s, s)
				_ = s.Close()
			})
		}
	})
	return wg.Wait
}

func acceptedLink(t testing.TB, n *node, peer string) Link {
	t.Helper()
	var l Link
	waitFor(t, "link to "+peer, patience, func() bool { l = n.Link(peer); return l != nil })
	return l
}

func TestConcurrentStreams(t *testing.T) {
	// Hundreds of streams at once can starve the link's packet handling
	// for longer than the default detector allows on a loaded machine.
	a, b, la := pairWith(t, tolerant)
	defer echo(acceptedLink(t, b, "a"))()
	defer a.Close()
	n := 1000
	size := 4 << 10
	if testing.Short() {
		n = 300
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs <- roundTrip(ctx, la, i, size) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "streams to close", patience, func() bool { return la.OpenStreams() == 0 })
}

// roundTrip sends size bytes tagged with i on a new stream and checks that
// the same bytes come back.
func roundTrip(ctx context.Context, l Link, i, size int) error {
	s, err := l.OpenStream(ctx)
	if err != nil {
		return fmt.Errorf("stream %d: open: %w", i, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	want := make([]byte, size)
	for j := 0; j+8 <= size; j += 8 {
		binary.BigEndian.PutUint64(want[j:], uint64(i)<<32|uint64(j))
	}
	go func() {
		_, _ = s.Write(want)
		_ = s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		return fmt.Errorf("stream %d: read: %w", i, err)
	}
	s.CloseRead(0)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("stream %d: got %d bytes, not the %d sent", i, len(got), size)
	}
	return nil
}

func TestStreamErrors(t *testing.T) {
	a, b, la := pair(t)
	lb := acceptedLink(t, b, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// The first stream AcceptStream returns is the first circuit stream,
	// never the control stream.
	sa, err := la.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Write([]byte("circuit")); err != nil {
		t.Fatal(err)
	}
	sb, err := lb.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(sb, buf); err != nil || string(buf) != "circuit" {
		t.Fatalf("first accepted stream read %q, %v", buf, err)
	}
	if la.OpenStreams() != 1 || lb.OpenStreams() != 1 {
		t.Fatalf("open streams %d/%d, want 1/1", la.OpenStreams(), lb.OpenStreams())
	}

	// Deadlines keep matching os.ErrDeadlineExceeded.
	_ = sb.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := sb.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	_ = sb.SetReadDeadline(time.Time{})

	// A reset reaches the peer as a *StreamResetError with the code.
	sa.Reset(42)
	var re *StreamResetError
	_, err = sb.Read(buf)
	if !errors.As(err, &re) || re.Code != 42 || !re.Remote || !errors.Is(err, ErrStreamReset) {
		t.Fatalf("read after peer reset: %v", err)
	}
	sb.Reset(1)
	waitFor(t, "reset streams to be counted closed", patience, func() bool {
		return la.OpenStreams() == 0 && lb.OpenStreams() == 0
	})

	// Half-close: the peer reads EOF and can still answer.
	sa, _ = la.OpenStream(ctx)
	_, _ = sa.Write([]byte("x"))
	_ = sa.CloseWrite()
	sb, _ = lb.AcceptStream(ctx)
	if got, err := io.ReadAll(sb); err != nil || string(got) != "x" {
		t.Fatalf("read to EOF: %q %v", got, err)
	}
	_, _ = sb.Write([]byte("y"))

	// Streams of a lost link end with ErrLinkLost at both ends.
	pending := make(chan error, 1)
	go func() {
		_, _ = sa.Read(make([]byte, 1)) // "y"
		_, err := sa.Read(make([]byte, 1))
		pending <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = lb.Close("test over")
	select {
	case err := <-pending:
		if !errors.Is(err, ErrLinkLost) {
			t.Fatalf("read on the peer of a closed link: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read did not end when the link closed")
	}
	if _, err := sb.Write([]byte("z")); !errors.Is(err, ErrLinkLost) {
		t.Fatalf("write on a closed link: %v", err)
	}
	if _, err := la.OpenStream(ctx); !errors.Is(err, ErrLinkLost) {
		t.Fatalf("open on a lost link: %v", err)
	}
	_ = a.Close()
}

// The stream wrapper allocates nothing per round trip: every allocation
// made while 200 round trips cross it is recorded (MemProfileRate 1) and
// attributed to the wrapper only if one of its methods called it without
// quic-go in between, so quic-go's own allocations and those of other
// goroutines, which vary with timing and load, do not count. Every probe
// tick hands the streams that left a Read to the reclaim pass, which lets
// the next Read queue them again: the probes run every millisecond here,
// so the round trips cross hundreds of ticks, as they do on a starved
// machine at the default interval.
func TestStreamAllocs(t *testing.T) {
	s, _ := openEchoStreamWith(t, func(c *QUICConfig) {
		c.ProbeInterval = time.Millisecond
		c.ProbeMisses = int(patience / c.ProbeInterval)
	})
	defer s.Close()
	wbuf, rbuf := make([]byte, 1024), make([]byte, 1024)
	const trips = 200
	roundTrips := func() {
		for range trips {
			if _, err := s.Write(wbuf); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(s, rbuf); err != nil {
				t.Fatal(err)
			}
		}
	}
	roundTrips() // buffers and pools reach their steady state
	ours, all := wrapperAllocs(roundTrips)
	t.Logf("%d round trips: %d allocations in all, %d by the wrapper (both ends)", trips, all, ours)
	if all == 0 {
		t.Fatal("the heap profile recorded no allocation at all: the measurement is broken")
	}
	if ours > trips/10 { // a Read or a Write that allocates adds at least 2 per trip
		t.Fatalf("the stream wrapper made %d allocations in %d round trips", ours, trips)
	}
}

// wrapperAllocs runs f with every allocation recorded and returns the
// allocations made under a method of quicStream with no quic-go frame
// between it and the allocation, and all allocations.
func wrapperAllocs(f func()) (ours, all int64) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	defer func() { runtime.MemProfileRate = old }()
	count := func() (ours, all int64) {
		runtime.GC() // the profile is published at the end of a cycle
		runtime.GC()
		var recs []runtime.MemProfileRecord
		for n := 1024; ; n *= 2 {
			recs = make([]runtime.MemProfileRecord, n)
			if got, ok := runtime.MemProfile(recs, true); ok {
				recs = recs[:got]
				break
			}
		}
		for _, r := range recs {
			all += r.AllocObjects
			if underWrapper(r.Stack()) {
				ours += r.AllocObjects
			}
		}
		return ours, all
	}
	ours0, all0 := count()
	f()
	ours1, all1 := count()
	return ours1 - ours0, all1 - all0
}

// underWrapper reports whether a quicStream method is the first frame of
// this package or quic-go above the allocation in stack.
func underWrapper(stack []uintptr) bool {
	frames := runtime.CallersFrames(stack)
	for {
		fr, more := frames.Next()
		switch {
		case strings.HasPrefix(fr.Function, "github.com/quic-go/"):
			return false
		case strings.Contains(fr.Function, "/links.(*quicStream)."):
			return true
		}
		if !more {
			return false
		}
	}
}

func TestPeekLeavesDataToRead(t *testing.T) {
	s, la := openEchoStream(t)
	pk, ok := s.(interface{ Peek([]byte) (int, error) })
	if !ok {
		t.Fatalf("%T cannot peek", s)
	}
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if n, err := pk.Peek(one); n != 1 || err != nil || one[0] != 'h' {
		t.Fatalf("Peek = %d %q, %v; want 1 \"h\"", n, one[:n], err)
	}
	if got, err := io.ReadAll(s); string(got) != "hello" || err != nil {
		t.Fatalf("read %q, %v after Peek; want hello", got, err)
	}
	if n, err := pk.Peek(one); n != 0 || err != io.EOF {
		t.Fatalf("Peek at the end = %d, %v; want io.EOF", n, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := la.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Reset(7)
	var re *StreamResetError
	if _, err := s.(interface{ Peek([]byte) (int, error) }).Peek(one); !errors.As(err, &re) || re.Code != 7 {
		t.Fatalf("Peek after Reset(7) = %v, want a *StreamResetError with code 7", err)
	}
}

// openEchoStream links two transports, echoes every stream the second
// accepts, and opens one stream from the first; all end with the test.
func openEchoStream(t *testing.T) (Stream, Link) {
	t.Helper()
	return openEchoStreamWith(t, nil)
}

// openEchoStreamWith is openEchoStream with mod applied to both nodes'
// configuration.
func openEchoStreamWith(t *testing.T, mod func(*QUICConfig)) (Stream, Link) {
	t.Helper()
	a, b, la := pairWith(t, mod)
	t.Cleanup(echo(acceptedLink(t, b, "a")))
	t.Cleanup(func() { a.Close() }) // runs first, as a deferred Close did
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := la.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, la
}

// TestMapStreamErrNoAllocOnSuccess: mapping the nil error of every
// CloseWrite, EOF and a deadline allocates nothing.
func TestMapStreamErrNoAllocOnSuccess(t *testing.T) {
	mapErr := mapStreamErr // not inlined, as at most call sites
	for _, err := range []error{nil, io.EOF, os.ErrDeadlineExceeded} {
		if n := testing.AllocsPerRun(100, func() { _ = mapErr(err) }); n != 0 {
			t.Errorf("mapStreamErr(%v): %.0f allocations, want 0", err, n)
		}
	}
}
