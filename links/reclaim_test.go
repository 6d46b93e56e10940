package links

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// windowPair links a to b, both with small receive windows, readers
// stalled after stall and WARN lines logged to log.
func windowPair(t *testing.T, stall time.Duration, log io.Writer) (a, b *node, la, lb Link) {
	t.Helper()
	ca := testCA(t, "m")
	mod := func(c *QUICConfig) {
		c.MaxStreamWindow = 64 << 10
		c.LinkWindow = 256 << 10
		c.ReaderStall = stall
		c.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a = newNode(t, issue(t, ca, "a"), mod)
	b = newNode(t, issue(t, ca, "b"), mod)
	la = dial(t, a, b)
	return a, b, la, acceptedLink(t, b, "a")
}

// holdUnread accepts streams on l and reads their first byte: it echoes
// those starting with 'h', hands those starting with 'i' to idle, and never
// reads the others again, telling held (if not nil) of each. Streams are
// taken at once, as a node does. It returns a function that waits for its
// goroutines once the link is closed.
// fillUnread opens n streams on l, writes "x" and chunk on each and
// waits until the other end holds all n unread (held, from holdUnread);
// the streams are reset when the test ends.
func fillUnread(t *testing.T, l Link, n int, chunk []byte, held <-chan struct{}) {
	t.Helper()
	for range n {
		s, err := l.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Reset(0) })
		_ = s.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := s.Write(append([]byte("x"), chunk...)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		<-held
	}
}

func holdUnread(l Link, idle chan<- Stream, held chan<- struct{}) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			s, err := l.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				var first [1]byte
				if _, err := io.ReadFull(s, first[:]); err == nil && first[0] == 'h' {
					_, _ = s.Write(first[:])
					_, _ = io.Copy(s, s)
					_ = s.Close()
					return
				}
				if first[0] == 'i' && idle != nil {
					idle <- s // read later
					return
				}
				if held != nil {
					held <- struct{}{}
				}
				<-l.Done()
				s.Reset(0)
			})
		}
	})
	return wg.Wait
}

// TestLinkWindowBoundsUnreadBytes: a peer writes on 16 streams that the
// node never reads, 1 MiB in all, against stream windows of 64 KiB. It
// gets no more than the link window (256 KiB) into the node's buffers.
func TestLinkWindowBoundsUnreadBytes(t *testing.T) {
	a, _, la, lb := windowPair(t, time.Hour, io.Discard)
	defer holdUnread(lb, nil, nil)()
	defer a.Close()
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		s, err := la.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		_ = s.SetWriteDeadline(time.Now().Add(2 * time.Second))
		wg.Go(func() {
			n, _ := s.Write(make([]byte, 64<<10))
			total.Add(int64(n))
		})
	}
	wg.Wait()
	// The writer's count was once seen 155 bytes above the window on a
	// loaded machine (where quic-go admits them is not pinned down); a few
	// KiB of slack keeps the test about the bound: without it the peer
	// gets all 1 MiB in.
	const slack = 4 << 10
	t.Logf("the peer got %d bytes into unread buffers", total.Load())
	if total.Load() > 256<<10+slack {
		t.Fatalf("the peer got %d bytes into unread buffers, more than the 256 KiB link window", total.Load())
	}
}

// TestStalledStreamsReclaimed: a peer fills the link's window with 16
// streams the node never reads; the node resets streams whose readers
// stalled (with the stalled code) until they fit in half the window, a
// stream the node reads on the same link moves 1 MiB both ways, and a
// stream whose reader is idle with nothing waiting is left alone.
func TestStalledStreamsReclaimed(t *testing.T) {
	var logs lockedBuffer
	a, b, la, lb := windowPair(t, 300*time.Millisecond, &logs)
	idleAt := make(chan Stream, 1)
	defer holdUnread(lb, idleAt, nil)()
	defer a.Close()
	idle, err := la.OpenStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Write([]byte("i")); err != nil {
		t.Fatal(err)
	}
	idleB := <-idleAt
	defer idleB.Reset(0)
	var stalled atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 16 {
		s, err := la.OpenStream(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		stop := context.AfterFunc(ctx, func() { s.Reset(0) })
		wg.Go(func() {
			defer stop()
			buf := bytes.Repeat([]byte("x"), 16<<10)
			for {
				if _, err := s.Write(buf); err != nil {
					var re *StreamResetError
					if errors.As(err, &re) && re.Code == DefaultStalledCode && re.Remote {
						stalled.Add(1)
					}
					return
				}
			}
		})
	}
	// The honest stream: 1 MiB echoed.
	s, err := la.OpenStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte("h"), bytes.Repeat([]byte("honest"), 1<<20/6)...)
	go func() {
		_, _ = s.Write(want)
		_ = s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("honest stream: %d of %d bytes echoed: %v", len(got), len(want), err)
	}
	waitFor(t, "stalled streams reset", 30*time.Second, func() bool { return stalled.Load() > 0 })
	// The idle stream outlived the reclaim: it still carries bytes.
	if _, err := idle.Write([]byte("ping")); err != nil {
		t.Fatalf("idle stream: %v", err)
	}
	_ = idleB.SetReadDeadline(time.Now().Add(10 * time.Second))
	ping := make([]byte, 4)
	if _, err := io.ReadFull(idleB, ping); err != nil || string(ping) != "ping" {
		t.Fatalf("idle stream after the reclaim: %q, %v", ping, err)
	}
	t.Logf("streams reset as stalled: %d of 16 (counted by b: %d)", stalled.Load(), b.StalledStreams())
	if b.StalledStreams() == 0 {
		t.Fatal("b does not count the streams it reset")
	}
	// The link logs once all of a pass's resets are done, after the writer
	// may have seen its own.
	const msg = "reset circuit streams whose readers stalled"
	waitFor(t, "the reclaim's WARN line", 30*time.Second, func() bool { return strings.Contains(logs.String(), msg) })
	if n := strings.Count(logs.String(), msg); n != 1 {
		t.Fatalf("%d WARN lines %q for %d streams reset, want 1:\n%s", n, msg, b.StalledStreams(), logs.String())
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestReclaimResetsLongestStalledFirst: a long-lived circuit that read
// 1 MiB (so it may hold a full 2 MiB stream window) pauses its reader
// with bytes waiting, while a peer's 7 streams, never read, have been
// stalled since they opened. Together they exceed half the 8 MiB link
// window: the peer's streams are reset, the paused circuit is not, and it
// reads on.
func TestReclaimResetsLongestStalledFirst(t *testing.T) {
	const (
		streamWindow = 2 << 20
		attackers    = 7 // 7 × 512 KiB fit in half the window, with the honest 2 MiB they do not
	)
	ca := testCA(t, "m")
	var resets resetLog
	mod := func(c *QUICConfig) {
		c.MaxStreamWindow = streamWindow
		c.LinkWindow = 4 * streamWindow
		c.ReaderStall = 300 * time.Millisecond
		c.OnStalled = resets.note
	}
	a := newNode(t, issue(t, ca, "a"), mod)
	b := newNode(t, issue(t, ca, "b"), mod)
	la := dial(t, a, b)
	lb := acceptedLink(t, b, "a")
	honestAt := make(chan Stream, 1)
	held := make(chan struct{}, attackers)
	defer holdUnread(lb, honestAt, held)()
	defer a.Close()

	// The honest circuit reads 1 MiB.
	honest, err := la.OpenStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = honest.SetWriteDeadline(time.Now().Add(30 * time.Second))
	chunk := bytes.Repeat([]byte("h"), 64<<10)
	if _, err := honest.Write([]byte("i")); err != nil {
		t.Fatal(err)
	}
	writeErr := make(chan error, 1)
	go func() {
		for range 16 {
			if _, err := honest.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	hb := <-honestAt
	defer hb.Reset(0)
	_ = hb.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(hb, buf); err != nil {
		t.Fatalf("honest stream, first MiB: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("honest stream, first MiB: %v", err)
	}

	// The peer's streams: bytes written, never read.
	fillUnread(t, la, attackers, chunk, held)

	// The honest reader makes progress once more after the peer's streams
	// are open, then pauses with 64 KiB waiting.
	if _, err := honest.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(hb, buf[:len(chunk)]); err != nil {
		t.Fatalf("honest stream, progress: %v", err)
	}
	if _, err := honest.Write(chunk); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reclaim to reset a stream", 30*time.Second, func() bool { return b.StalledStreams() > 0 })

	if _, err := io.ReadFull(hb, buf[:len(chunk)]); err != nil {
		t.Fatalf("the paused honest stream was reset: %v", err)
	}
	if _, err := honest.Write([]byte("more")); err != nil {
		t.Fatalf("the paused honest stream was reset: %v", err)
	}
	resetBounds := resets.list()
	t.Logf("reset streams holding at most %v bytes", resetBounds)
	for _, u := range resetBounds {
		if u == streamWindow {
			t.Fatalf("the honest stream (bound %d) was reset before the peer's streams stalled longer: %v", u, resetBounds)
		}
	}
}

// TestReclaimResetsHeaviestSourceFirst: a circuit from h, whose reader
// took one byte and paused with 64 KiB waiting, has been stalled longest
// when a's three streams, never read, join it. The four may hold 256 KiB,
// more than half the 256 KiB link window: the reclaim resets a's streams,
// the source holding the most, until the rest fit (two of them), and h's
// paused circuit reads on.
func TestReclaimResetsHeaviestSourceFirst(t *testing.T) {
	reclaimSparesPausedSource(t, "h", "a", "")
}

// TestReclaimRenamedStreamMovesSource: as
// TestReclaimResetsHeaviestSourceFirst, but h's paused circuit is first
// named as a's streams are ("c", a claim anyone relaying may make) and,
// once counted as stalled, named "h" (its source proven): the reclaim
// counts it against h, not against the claim whose streams hold the
// most, and it reads on.
func TestReclaimRenamedStreamMovesSource(t *testing.T) {
	reclaimSparesPausedSource(t, "c", "c", "h")
}

// reclaimSparesPausedSource runs TestReclaimResetsHeaviestSourceFirst with
// h's paused stream named pausedAs, then (if not "") renamed to after it
// was counted as stalled, and a's streams named attackerAs.
func reclaimSparesPausedSource(t *testing.T, pausedAs, attackerAs, renamed string) {
	const attackers = 3
	ca := testCA(t, "m")
	var resets resetLog
	mod := func(c *QUICConfig) {
		c.MaxStreamWindow = 64 << 10
		c.LinkWindow = 256 << 10
		c.ReaderStall = 300 * time.Millisecond
		c.OnStalled = resets.note
	}
	a := newNode(t, issue(t, ca, "a"), mod)
	b := newNode(t, issue(t, ca, "b"), mod)
	la := dial(t, a, b)
	lb := acceptedLink(t, b, "a")

	// b names each stream's source by its first byte: 'p' is h's paused
	// circuit, the rest are a's and never read again.
	paused := make(chan Stream, 1)
	held := make(chan struct{}, attackers)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer a.Close()
	wg.Go(func() {
		for {
			s, err := lb.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				var first [1]byte
				if _, err := io.ReadFull(s, first[:]); err != nil {
					return
				}
				if first[0] == 'p' {
					SetSource(s, ProvenSource(pausedAs))
					paused <- s
					return
				}
				SetSource(s, ProvenSource(attackerAs))
				held <- struct{}{}
				<-lb.Done()
				s.Reset(0)
			})
		}
	})

	chunk := bytes.Repeat([]byte("x"), 64<<10)
	honest, err := la.OpenStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = honest.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := honest.Write(append([]byte("p"), chunk...)); err != nil {
		t.Fatal(err)
	}
	hb := <-paused
	defer hb.Reset(0)
	// h's reader stalls first, and is counted, before a's streams open.
	time.Sleep(2 * 300 * time.Millisecond)
	if renamed != "" {
		SetSource(hb, ProvenSource(renamed))
	}

	fillUnread(t, la, attackers, chunk, held)
	waitFor(t, "the reclaim to reset two streams", 30*time.Second, func() bool { return b.StalledStreams() >= 2 })

	_ = hb.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(hb, chunk); err != nil {
		t.Fatalf("h's paused circuit, stalled longest but holding less than a's streams, was reset: %v", err)
	}
	if _, err := honest.Write([]byte("more")); err != nil {
		t.Fatalf("h's paused circuit was reset: %v", err)
	}
	if n := b.StalledStreams(); n != 2 {
		t.Fatalf("%d streams reset, want 2 of a's (the rest fit in half the window)", n)
	}
}

// TestSourceKeys: a proven source, the same source claimed along
// different paths and paths that differ only in how their names split
// give different keys; the same names give the same key; building a key
// allocates nothing.
func TestSourceKeys(t *testing.T) {
	keys := map[string]SourceKey{
		"h":             ProvenSource("h"),
		"hp":            ProvenSource("hp"),
		"h via p":       ClaimedSource("h", []string{"p"}),
		"h via m, p":    ClaimedSource("h", []string{"m", "p"}),
		"h via mp":      ClaimedSource("h", []string{"mp"}),
		"h via p, m":    ClaimedSource("h", []string{"p", "m"}),
		"hp via none":   ClaimedSource("hp", nil),
		"h via none":    ClaimedSource("h", nil),
		"h via h, p":    ClaimedSource("h", []string{"h", "p"}),
		"h via h, m, p": ClaimedSource("h", []string{"h", "m", "p"}),
	}
	seen := make(map[SourceKey]string)
	for name, k := range keys {
		if k == 0 {
			t.Errorf("%s: key 0, the unnamed source's", name)
		}
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s share a key", name, other)
		}
		seen[k] = name
	}
	if ClaimedSource("h", []string{"m", "p"}) != keys["h via m, p"] || ProvenSource("h") != keys["h"] {
		t.Error("the same names gave another key")
	}
	path := []string{"h", "m", "p"}
	if n := testing.AllocsPerRun(100, func() { _ = ClaimedSource("h", path) }); n != 0 {
		t.Errorf("ClaimedSource allocates %v times", n)
	}
}
