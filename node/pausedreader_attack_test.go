package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestAttackStallFloodSparesPausedReader: h's application at d
// reads the first byte of h's circuit, then pauses (backpressure, as
// any net.Conn reader may apply) while h has 256 KiB more to send: 64 KiB
// wait in the stream window, well below the link's stalled allowance
// (half of a 1 MiB link window), and without an attack the circuit
// waits as long as the reader pauses and delivers everything after. a, a
// member with a valid certificate whose circuits reach d over the same
// link (through r), opens circuits to d that it fills and whose replies
// it never reads, keeping new ones stalled. d's reclaim resets the
// longest stalled circuit of the link first: h's, whose reader only
// paused, while a keeps opening new ones. The paused reader should keep
// its circuit: a's flood should cost a's circuits, not h's.
func TestAttackStallFloodSparesPausedReader(t *testing.T) {
	t.Parallel()
	c := pausedReaderCluster(t, nil, "a-r", "h-r", "r-d")
	c.waitRoute("a", "d", 2)
	a := c.nodes["a"]
	// The flood, as TestStalledReadersCannotStarveALink's.
	pausedReaderUnderFlood(t, c, func() []func() {
		var closers []func()
		for i := range 2 * stallAttackers {
			service := "sink"
			if i%2 == 1 {
				service = EchoService
			}
			conn, err := a.DialWith(ctxT(t, 10*time.Second), "d", service, DialOptions{NoResume: true})
			if err != nil {
				continue
			}
			closers = append(closers, fill(conn.Write, func() { conn.Close() }))
		}
		return closers
	})
}

// TestAttackForgedSourceStallFloodSparesPausedReader: as
// TestAttackStallFloodSparesPausedReader, but the flood's circuits claim
// to be h's. m, a router linked to r, opens them by hand at hop 1 with
// source h, through r and d to x, a node behind d that accepts clear
// circuits and never reads them: d relays them and holds, on the same
// link as h's paused circuit, what x does not take. Were the open
// header's source believed, the flood would count as h's, and within
// h's streams the paused one has stalled longest. (An open forged to
// d itself, sealed, fails its handshake while d still reads it.) The
// paused reader should keep its circuit.
func TestAttackForgedSourceStallFloodSparesPausedReader(t *testing.T) {
	t.Parallel()
	c := pausedReaderCluster(t, func(cfg *Config) {
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}, "m-r", "h-r", "r-d", "d-x")
	c.waitRoute("m", "x", 3)
	m, x := c.nodes["m"], c.nodes["x"]
	startSink(t, x)
	l := m.link("r")
	forgedFlood(t, c, l, "h", 2*stallAttackers)
}

// openClearByHand opens a clear circuit with header o on l and reads the
// result; it fails unless the circuit was accepted. The caller owns the
// stream, nil only when it could not be opened.
func openClearByHand(ctx context.Context, l links.Link, o *circuit.Open) (links.Stream, error) {
	s, err := l.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	b, err := o.AppendTo(nil)
	if err != nil {
		return s, err
	}
	if _, err := s.Write(b); err != nil {
		return s, err
	}
	res, err := circuit.ReadResult(s, 0)
	if err != nil {
		return s, err
	}
	if res.Code != circuit.Accepted {
		return s, fmt.Errorf("refused: %v: %s", res.Code, res.Reason)
	}
	return s, nil
}

const stallAttackers = 24

// fill writes chunks with write until it fails, on a goroutine; the
// function returned ends it with stop and waits for it.
func fill(write func([]byte) (int, error), stop func()) func() {
	chunk := make([]byte, 16<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := write(chunk); err != nil {
				return
			}
		}
	}()
	return func() { stop(); <-done }
}

// pausedReaderCluster builds a cluster of links (tweak, if not nil, sets
// more) with small windows and a short ReaderStall, and waits for h's route to d (through r).
func pausedReaderCluster(t *testing.T, tweak func(*Config), pairs ...string) *cluster {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.StreamWindow = 64 << 10
		cfg.Limits.LinkWindow = 1 << 20
		cfg.Limits.ReaderStall = 500 * time.Millisecond
		if tweak != nil {
			tweak(cfg)
		}
	}
	c.build(pairs...)
	c.waitRoute("h", "d", 2)
	return c
}

// pausedReaderUnderFlood opens h's circuit to a reader at d that takes
// one byte and pauses, starts flood (which returns what ends it) once
// the circuit waits, lets the reader go on 5 s later, and fails the test
// unless the reader gets all of h's bytes.
func pausedReaderUnderFlood(t *testing.T, c *cluster, flood func() []func()) {
	const honestBytes = 256 << 10
	d, h := c.nodes["d"], c.nodes["h"]
	startSink(t, d)
	// The paused reader at d: one byte, then nothing until resume.
	lis, err := d.Listen("paused")
	if err != nil {
		t.Fatal(err)
	}
	resume := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			got <- err
			return
		}
		defer conn.Close()
		one := make([]byte, 1)
		if _, err := io.ReadFull(conn, one); err != nil {
			got <- fmt.Errorf("first byte: %w", err)
			return
		}
		<-resume
		rest, err := io.ReadAll(conn)
		if err != nil {
			got <- fmt.Errorf("the paused reader's circuit, after %d bytes: %w", 1+len(rest), err)
			return
		}
		if 1+len(rest) != honestBytes {
			got <- fmt.Errorf("the paused reader got %d bytes, want %d", 1+len(rest), honestBytes)
			return
		}
		got <- nil
	}()
	hc, err := h.DialWith(ctxT(t, 10*time.Second), "d", "paused", DialOptions{NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	wrote := make(chan error, 1)
	go func() {
		_, err := hc.Write(bytes.Repeat([]byte("h"), honestBytes))
		if err == nil {
			err = hc.CloseWrite()
		}
		wrote <- err
	}()
	time.Sleep(2 * time.Second) // h's circuit waits on its paused reader

	stops := flood()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	time.Sleep(5 * time.Second)
	close(resume)
	select {
	case err := <-got:
		werr := <-wrote
		var re *circuit.ResetError
		if err != nil || werr != nil {
			stalled := errors.As(err, &re) && re.Code.Reason() == circuit.CloseStalled ||
				errors.As(werr, &re) && re.Code.Reason() == circuit.CloseStalled
			t.Errorf("the flood got h's paused circuit reset (reset as stalled: %v): reader: %v; h's write: %v", stalled, err, werr)
		}
	case <-time.After(time.Minute):
		t.Fatal("the paused reader got neither its bytes nor an error within a minute")
	}
}

// TestAttackTwoHopForgedSourceStallFloodSparesPausedReader: as
// TestAttackForgedSourceStallFloodSparesPausedReader, but the forger is
// two hops from the relay whose link holds h's paused circuit. m opens
// the flood's circuits by hand at hop 1 naming h as their source, with a
// path that ends with m as the relays' check asks, through p, an honest
// router that also relays h's own circuits, and r to x, a node behind r
// that accepts clear circuits and never reads them: r holds, on p's link,
// what x does not take. Were a claim keyed by the claimed source and the
// neighbour alone, m's flood would share the key of h's circuits at r
// ("h as claimed by p"), and within it h's paused circuit has stalled
// longest. The paused reader should keep its circuit.
func TestAttackTwoHopForgedSourceStallFloodSparesPausedReader(t *testing.T) {
	t.Parallel()
	twoHopForgedFlood(t, "h")
}

// TestTwoHopForgedOtherSourceStallFloodSparesPausedReader is the same
// flood claiming a source no honest circuit has: the baseline, which the
// reclaim already told apart from h's circuits.
func TestTwoHopForgedOtherSourceStallFloodSparesPausedReader(t *testing.T) {
	t.Parallel()
	twoHopForgedFlood(t, "z")
}

func twoHopForgedFlood(t *testing.T, claimed string) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.StreamWindow = 64 << 10
		cfg.Limits.LinkWindow = 1 << 20
		cfg.Limits.ReaderStall = 500 * time.Millisecond
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	c.build("m-p", "h-p", "p-r", "r-d", "r-x")
	c.waitRoute("h", "d", 3)
	c.waitRoute("m", "x", 3)
	m, x := c.nodes["m"], c.nodes["x"]
	startSink(t, x)
	l := m.link("p")
	forgedFlood(t, c, l, claimed, 8) // x holds 8 x 64 KiB: not above its budget; r holds 9
}

// forgedFlood runs pausedReaderUnderFlood with n circuits m opens by hand
// over l to x's sink at hop 1, naming source as theirs and itself as the
// relay before, each filled and never read.
func forgedFlood(t *testing.T, c *cluster, l links.Link, source string, n int) {
	t.Helper()
	pausedReaderUnderFlood(t, c, func() []func() {
		var closers []func()
		for range n {
			o := &circuit.Open{Dest: "x", Source: source, Service: "sink", Hop: 1, HopLimit: 15, Path: []string{"m"}}
			s, err := openClearByHand(ctxT(t, 10*time.Second), l, o)
			if err != nil {
				if s != nil {
					s.Reset(circuit.CloseCancelled)
				}
				t.Logf("m's forged open: %v", err)
				continue
			}
			closers = append(closers, fill(s.Write, func() { s.Reset(circuit.CloseCancelled) }))
		}
		if len(closers) == 0 {
			t.Fatal("x accepted none of m's forged opens")
		}
		return closers
	})
}
