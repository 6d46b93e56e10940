package circuit

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links"
)

func TestSpliceHalfClosePropagates(t *testing.T) {
	p := newPath(t, 2, nil)
	c := mustConnect(t, p, basicOpen(), false)
	up := bytes.Repeat([]byte("u"), 100_000)
	if _, err := c.caller.Write(up); err != nil {
		t.Fatal(err)
	}
	if err := c.caller.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c.dest)
	if err != nil || !bytes.Equal(got, up) {
		t.Fatalf("destination read %d bytes, %v; want %d then EOF", len(got), err, len(up))
	}
	// The other direction still works after the half-close.
	if _, err := c.dest.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if err := c.dest.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(c.caller)
	if err != nil || string(got) != "reply" {
		t.Fatalf("caller read %q, %v; want reply then EOF", got, err)
	}
	hdr, _ := (&Result{Code: Accepted, Node: "d"}).AppendTo(nil)
	for i, sp := range c.splicers {
		select {
		case <-sp.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("splice %d did not end after both half-closes", i)
		}
		st, err := sp.Wait()
		down := int64(len(hdr) + 5) // the result header and the reply
		if err != nil || st.Up != int64(len(up)) || st.Down != down {
			t.Errorf("splice %d: %+v, %v; want Up %d Down %d and no error", i, st, err, len(up), down)
		}
	}
}

// wantReset checks that err is a reset carrying code.
func wantReset(t *testing.T, what string, err error, code uint64) {
	t.Helper()
	var re *links.StreamResetError
	if !errors.Is(err, links.ErrStreamReset) || !errors.As(err, &re) || re.Code != code {
		t.Errorf("%s: %v, want a stream reset with code %d", what, err, code)
	}
}

func TestResetPropagatesBothWays(t *testing.T) {
	p := newPath(t, 2, nil)
	c := mustConnect(t, p, basicOpen(), false)
	c.caller.Reset(CloseCancelled)
	_, err := c.dest.Read(make([]byte, 8))
	wantReset(t, "destination Read", err, CloseCancelled)
	for i, sp := range c.splicers {
		<-sp.Done()
		if _, err := sp.Wait(); err == nil {
			t.Errorf("splice %d ended without error after a reset", i)
		}
	}

	c = mustConnect(t, p, basicOpen(), false)
	c.dest.Reset(CloseShuttingDown)
	_, err = c.caller.Read(make([]byte, 8))
	wantReset(t, "caller Read", err, CloseShuttingDown)
}

func TestSplicerResetEndsBothEnds(t *testing.T) {
	p := newPath(t, 1, nil)
	c := mustConnect(t, p, basicOpen(), false)
	c.splicers[0].Reset(CloseShuttingDown)
	_, err := c.caller.Read(make([]byte, 8))
	wantReset(t, "caller Read", err, CloseShuttingDown)
	_, err = c.dest.Read(make([]byte, 8))
	wantReset(t, "destination Read", err, CloseShuttingDown)
	if _, err := c.splicers[0].Wait(); !errors.Is(err, links.ErrStreamReset) {
		t.Errorf("Wait: %v, want the local reset", err)
	}
}

func TestLinkLostEndsBothEnds(t *testing.T) {
	p := newPath(t, 1, nil)
	c := mustConnect(t, p, basicOpen(), false)
	// The link between the relay and the destination dies.
	p.links[1].dialer.CloseWithError(0, "gone")
	_, err := c.dest.Read(make([]byte, 8))
	if !errors.Is(err, links.ErrLinkLost) {
		t.Errorf("destination Read: %v, want ErrLinkLost", err)
	}
	_, err = c.caller.Read(make([]byte, 8))
	wantReset(t, "caller Read", err, CloseLinkLost)
}

// tap measures the bytes a relay holds: read from its incoming stream but
// not yet written to its outgoing one.
type tap struct {
	read, written, maxHeld atomic.Int64
}

type tapIn struct {
	links.Stream
	t *tap
}

func (s tapIn) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	s.t.read.Add(int64(n))
	return n, err
}

type tapOut struct {
	links.Stream
	t *tap
}

func (s tapOut) Write(p []byte) (int, error) {
	held := s.t.read.Load() - s.t.written.Load()
	for m := s.t.maxHeld.Load(); held > m && !s.t.maxHeld.CompareAndSwap(m, held); m = s.t.maxHeld.Load() {
	}
	n, err := s.Stream.Write(p)
	s.t.written.Add(int64(n))
	return n, err
}

func TestSpliceBackpressureBound(t *testing.T) {
	const window, bufSize, chunk = 64 << 10, 16 << 10, 4 << 10
	cfg := &quic.Config{
		InitialStreamReceiveWindow: window, MaxStreamReceiveWindow: window,
		InitialConnectionReceiveWindow: 4 * window, MaxConnectionReceiveWindow: 4 * window,
	}
	p := newPath(t, 1, cfg)
	p.bufSize = bufSize
	p.tap = &tap{}
	c := mustConnect(t, p, basicOpen(), false)

	var sent atomic.Int64
	done := make(chan error, 1)
	const total = 1 << 20
	go func() {
		b := make([]byte, chunk)
		for i := 0; i < total/chunk; i++ {
			for j := range b {
				b[j] = byte(i + j)
			}
			n, err := c.caller.Write(b)
			sent.Add(int64(n))
			if err != nil {
				done <- err
				return
			}
		}
		done <- c.caller.CloseWrite()
	}()
	// The destination does not read: the sender must stall past one window
	// and never get further ahead than the bound. A stall is the count
	// standing still for a while; on a loaded machine the sender may pause
	// early, so only a count past the window ends the wait.
	bound := int64(2*window + 2*bufSize + chunk)
	var stalled int64
	deadline := time.Now().Add(20 * time.Second)
	for last, since := int64(-1), time.Now(); ; time.Sleep(10 * time.Millisecond) {
		s := sent.Load()
		if s > bound {
			t.Fatalf("sender got %d bytes ahead although nothing is read (bound %d)", s, bound)
		}
		if s != last {
			last, since = s, time.Now()
		} else if s > window && time.Since(since) >= 300*time.Millisecond {
			stalled = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sender did not stall past the %d-byte window: %d bytes sent", window, s)
		}
	}
	t.Logf("sender stalled after %d bytes (bound %d); relay held at most %d bytes (bufSize %d)",
		stalled, bound, p.tap.maxHeld.Load(), bufSize)
	if h := p.tap.maxHeld.Load(); h > bufSize || h == 0 {
		t.Errorf("relay held up to %d bytes in one direction, want 0 < held <= %d", h, bufSize)
	}
	if s := sent.Load(); s > bound {
		t.Fatalf("sender got %d bytes ahead although nothing is read (bound %d)", s, bound)
	}
	// Draining releases the sender and every byte arrives intact.
	got, err := io.ReadAll(c.dest)
	if err != nil || len(got) != total {
		t.Fatalf("read %d bytes, %v; want %d", len(got), err, total)
	}
	for i := 0; i < total; i++ {
		if got[i] != byte(i/chunk+i%chunk) {
			t.Fatalf("byte %d corrupted", i)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSpliceEndsWhenCallerClosesAndDestIsSilent: the caller closes
// (FIN and stop-sending CloseNormal) while the destination, holding its
// end open, sends nothing: each relay's splice ends cleanly at once, the
// destination reads EOF after what was sent, and its Write finds the
// stop. Before, the splice's direction toward the caller waited for data
// nobody would read, until the half-closed bound or for good, holding
// the circuit at every relay.
func TestSpliceEndsWhenCallerClosesAndDestIsSilent(t *testing.T) {
	p := newPath(t, 2, nil)
	c := mustConnect(t, p, basicOpen(), false)
	if _, err := c.caller.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	c.caller.Close()
	for i, sp := range c.splicers {
		select {
		case <-sp.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("splice %d still runs 5 s after the caller closed, the destination silent", i)
		}
		if _, err := sp.Wait(); err != nil {
			t.Errorf("splice %d: %v, want a clean end", i, err)
		}
	}
	if got, err := io.ReadAll(c.dest); err != nil || string(got) != "bye" {
		t.Errorf("destination read %q, %v; want bye then EOF", got, err)
	}
}

// TestSpliceResetsWhenCallerStopsReadingWithACode: the caller stops
// reading with another code than CloseNormal while the destination is
// silent: the splices reset both ways with that code at once, as when a
// write finds the stop.
func TestSpliceResetsWhenCallerStopsReadingWithACode(t *testing.T) {
	p := newPath(t, 2, nil)
	c := mustConnect(t, p, basicOpen(), false)
	c.caller.s.CloseRead(CloseCancelled)
	for i, sp := range c.splicers {
		select {
		case <-sp.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("splice %d still runs 5 s after the caller stopped reading, the destination silent", i)
		}
	}
	_, err := c.dest.Read(make([]byte, 8))
	wantReset(t, "destination Read", err, CloseCancelled)
}
