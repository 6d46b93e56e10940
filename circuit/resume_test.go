package circuit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

func resumableOpen(flags Flags) *Open {
	o := basicOpen()
	o.Flags = FlagResumable | flags
	return o
}

// resumeRig is a source and a destination with a resume table, each path
// a sealed circuit through one relay of its own (a testPath).
type resumeRig struct {
	t          *testing.T
	k          *sealKeys
	table      *ResumeTable
	mu         sync.Mutex
	paths      []*testPath
	circs      []*circuit
	redials    atomic.Int64
	resumed    sync.WaitGroup // the destination's Resume calls
	resumeErrs chan error
	// wrap, when set, is the relay of the next path connect opens (then
	// it is cleared): a relay that misbehaves.
	wrap func(in, out links.Stream) (links.Stream, links.Stream)
	// source, when set, wraps the source's stream of the next path
	// connect opens (then it is cleared): a link that fails under it.
	source func(links.Stream) links.Stream
	// frameWait, when set, is how long the destination waits for a resume
	// frame (default 5 s).
	frameWait time.Duration
}

func newResumeRig(t *testing.T) *resumeRig {
	g := &resumeRig{t: t, k: newSealKeys(t), table: NewResumeTable(), resumeErrs: make(chan error, 16)}
	t.Cleanup(func() {
		g.resumed.Wait()
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, c := range g.circs {
			c.waitRelays(2 * time.Second)
		}
	})
	return g
}

// connect opens a sealed circuit with flags over a new one-relay path;
// with resume, the destination hands it to the table.
func (g *resumeRig) connect(ctx context.Context, flags Flags) (*testPath, *circuit, error) {
	p := newPath(g.t, 1, nil)
	g.mu.Lock()
	p.wrap, g.wrap = g.wrap, nil
	source := g.source
	g.source = nil
	g.mu.Unlock()
	o := resumableOpen(flags)
	dest := g.k.accept
	if flags&FlagResume != 0 {
		dest = func(s links.Stream, o *Open) (*Conn, error) {
			c, err := g.k.accept(s, o)
			if err == nil {
				g.resumed.Add(1)
				go func() {
					defer g.resumed.Done()
					wait := 5 * time.Second
					if g.frameWait > 0 {
						wait = g.frameWait
					}
					_, err := g.table.Resume(c, o.Source, o.Service, time.Now().Add(wait))
					g.resumeErrs <- err
				}()
			}
			return c, err
		}
	}
	dial := g.k.dial(o, false, false, false)
	if source != nil {
		sealed := dial
		dial = func(ctx context.Context, s links.Stream) (*Conn, error) { return sealed(ctx, source(s)) }
	}
	c, err := p.connectWith(o, dest, dial)
	if err != nil {
		return nil, nil, err
	}
	g.mu.Lock()
	g.paths = append(g.paths, p)
	g.circs = append(g.circs, c)
	g.mu.Unlock()
	return p, c, nil
}

// redial is a source's Redial: a new path through a relay of its own.
func (g *resumeRig) redial(ctx context.Context) (Path, error) {
	g.redials.Add(1)
	_, c, err := g.connect(ctx, FlagResume)
	if err != nil {
		return nil, err
	}
	return c.caller, nil
}

// pair opens a resumable circuit: its source and destination ends.
func (g *resumeRig) pair(scfg, dcfg ResumeConfig) (*testPath, *Resumable, *Resumable) {
	g.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, c, err := g.connect(ctx, 0)
	if err != nil {
		g.t.Fatal(err)
	}
	if scfg.Redial == nil {
		scfg.Redial = g.redial
	}
	src, err := NewResumableSource(c.caller, c.caller.LocalAddr(), c.caller.RemoteAddr(), scfg)
	if err != nil {
		g.t.Fatal(err)
	}
	dst := NewResumableDest(c.dest, c.dest.LocalAddr(), c.dest.RemoteAddr(), g.table, "s", "echo", dcfg)
	g.t.Cleanup(func() {
		src.Reset(CloseCancelled)
		dst.Reset(CloseCancelled)
		src.Wait()
		dst.Wait()
	})
	return p, src, dst
}

// crash kills the relay of p the way a crashed process goes: both of its
// QUIC connections close at once, no circuit gets a goodbye.
func crash(p *testPath) {
	p.links[0].listener.CloseWithError(0, "relay crashed")
	p.links[1].dialer.CloseWithError(0, "relay crashed")
}

// waitRegistered waits until the destination knows the circuit's id.
func waitRegistered(t *testing.T, table *ResumeTable, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for table.Len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("table holds %d circuits, want %d", table.Len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// serveEcho has dst echo everything back until the end of its stream,
// then half-close; the channel gets the outcome.
func serveEcho(dst *Resumable) <-chan error {
	served := make(chan error, 1)
	go func() {
		_, err := io.Copy(dst, dst)
		if err == nil {
			err = dst.CloseWrite()
		}
		served <- err
	}()
	return served
}

// endEcho closes src's write side and waits for the echoing end that
// served reports (serveEcho) to end without an error.
func endEcho(t *testing.T, src *Resumable, served <-chan error) {
	t.Helper()
	if err := src.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("echo: %v", err)
	}
}

// echoByte writes b on src and reads it back from an echoing end.
func echoByte(t *testing.T, src *Resumable, b byte) {
	t.Helper()
	buf := []byte{b}
	if _, err := src.Write(buf); err != nil {
		t.Fatalf("write %q: %v", b, err)
	}
	if _, err := io.ReadFull(src, buf); err != nil || buf[0] != b {
		t.Fatalf("echo of %q: %q, %v", b, buf, err)
	}
}

// A transfer both ways through a relay that crashes mid-transfer, twice:
// every byte arrives once and in order, and neither application sees an
// error.
func TestResumeSurvivesRelayCrash(t *testing.T) {
	size := 16 << 20
	if testing.Short() {
		size = 4 << 20
	}
	const window = 256 << 10
	g := newResumeRig(t)
	var events []ResumeEvent
	var evMu sync.Mutex
	cfg := ResumeConfig{Window: window, OnResume: func(ev ResumeEvent) {
		evMu.Lock()
		events = append(events, ev)
		evMu.Unlock()
	}}
	p, src, dst := g.pair(cfg, ResumeConfig{Window: window})
	data := make([]byte, size)
	rng := mrand.NewChaCha8([32]byte{14})
	_, _ = rng.Read(data)
	want := sha256.Sum256(data)

	// The destination echoes everything back.
	echoErr := serveEcho(dst)
	var got atomic.Int64
	readErr := make(chan error, 1)
	var back [sha256.Size]byte
	go func() {
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			h.Write(buf[:n])
			got.Add(int64(n))
			if err == io.EOF {
				h.Sum(back[:0])
				readErr <- nil
				return
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	var maxHeld int64
	writeErr := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); {
			n, err := src.Write(data[off:min(len(data), off+100_000)])
			off += n
			if err != nil {
				writeErr <- err
				return
			}
			src.mu.Lock()
			held := max(src.written-src.acked, int64(len(src.sbuf.buf)))
			src.mu.Unlock()
			if held > maxHeld {
				maxHeld = held
			}
		}
		writeErr <- src.CloseWrite()
	}()

	// Crash the relay a quarter of the way, and the one that took over
	// half way.
	waitRegistered(t, g.table, 1)
	waitFor(t, func() bool { return got.Load() >= int64(size/4) })
	crash(p)
	waitFor(t, func() bool { return src.Resumes() >= 1 && got.Load() >= int64(size/2) })
	g.mu.Lock()
	second := g.paths[len(g.paths)-1]
	g.mu.Unlock()
	crash(second)

	for name, ch := range map[string]<-chan error{"write": writeErr, "read": readErr, "echo": echoErr} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not finish; source read %d of %d", name, got.Load(), size)
		}
	}
	if back != want {
		t.Fatalf("echoed bytes differ: SHA-256 %x, want %x", back, want)
	}
	if got.Load() != int64(size) {
		t.Fatalf("read %d bytes, want %d", got.Load(), size)
	}
	if src.Resumes() < 2 || dst.Resumes() < 2 {
		t.Errorf("resumes: source %d, destination %d, want 2 each", src.Resumes(), dst.Resumes())
	}
	if maxHeld > window {
		t.Errorf("retransmit buffer held %d bytes, window %d", maxHeld, window)
	}
	evMu.Lock()
	for _, ev := range events {
		if ev.Err != nil || ev.Path == nil || ev.Cause == nil {
			t.Errorf("resume event %+v: want a path and the failure it replaced", ev)
		}
	}
	evMu.Unlock()
	src.Close()
	dst.Close()
	src.Wait()
	dst.Wait()
	if g.table.Len() != 0 {
		t.Errorf("table holds %d circuits after both ends closed", g.table.Len())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// rawResume opens a FlagResume path and sends a resume frame naming id.
func (g *resumeRig) rawResume(t *testing.T, id [idLen]byte) (Path, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, c, err := g.connect(ctx, FlagResume)
	if err != nil {
		t.Fatal(err)
	}
	b := binary.BigEndian.AppendUint64(append([]byte{frameResume}, id[:]...), 0)
	if _, err := c.caller.Write(b); err != nil {
		t.Fatal(err)
	}
	c.caller.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadFull(c.caller, make([]byte, 9))
	return c.caller, err
}

// Nobody resumes a circuit without its id and its source's name: the
// destination resets the resume path (a reset by an end, which a source
// never retries) and the circuit carries on untouched.
func TestResumeRefusedWithoutIDOrSource(t *testing.T) {
	g := newResumeRig(t)
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
	if _, err := src.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)

	var wrong [idLen]byte
	rand.Read(wrong[:])
	_, err := g.rawResume(t, wrong)
	var re *ResetError
	if !errors.As(err, &re) || re.Code != CloseCode(CloseCancelled) || !refusedForGood(err) {
		t.Errorf("resume with a wrong id: %v, want a reset by the destination (cancelled)", err)
	}
	if err := <-g.resumeErrs; !errors.Is(err, ErrResumeRefused) {
		t.Errorf("destination's Resume: %v, want ErrResumeRefused", err)
	}

	// The right id from another source: the handshake proved "x", and the
	// table is keyed by the source it authenticated.
	src.mu.Lock()
	id := src.id
	src.mu.Unlock()
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		a.Write(binary.BigEndian.AppendUint64(append([]byte{frameResume}, id[:]...), 0))
	}()
	if _, err := g.table.Resume(pipePath{b}, "x", "echo", time.Now().Add(5*time.Second)); !errors.Is(err, ErrResumeRefused) {
		t.Errorf("resume of the right id by another source: %v, want ErrResumeRefused", err)
	}
	// Nor by the right source for another service.
	a2, b2 := net.Pipe()
	defer a2.Close()
	go a2.Write(binary.BigEndian.AppendUint64(append([]byte{frameResume}, id[:]...), 0))
	if _, err := g.table.Resume(pipePath{b2}, "s", "other", time.Now().Add(5*time.Second)); !errors.Is(err, ErrResumeRefused) {
		t.Errorf("resume for another service: %v, want ErrResumeRefused", err)
	}

	// The circuit is unharmed.
	buf := make([]byte, 5)
	dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(dst, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("destination read %q, %v", buf, err)
	}
	if src.Resumes() != 0 || g.redials.Load() != 0 {
		t.Errorf("resumes %d, redials %d: want none", src.Resumes(), g.redials.Load())
	}
}

// pipePath is a Path over a net.Conn (net.Pipe) for table tests.
type pipePath struct{ net.Conn }

func (p pipePath) Reset(uint64) { p.Conn.Close() }

// After the resume timeout the destination has given up: its application
// gets ErrResumeTimeout, and the source's late resume is refused
// (ErrResumeRefused), not retried.
func TestResumeAfterTimeoutRefused(t *testing.T) {
	g := newResumeRig(t)
	gate := make(chan struct{})
	scfg := ResumeConfig{Timeout: 20 * time.Second, Redial: func(ctx context.Context) (Path, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return g.redial(ctx)
	}}
	p, src, dst := g.pair(scfg, ResumeConfig{Timeout: 300 * time.Millisecond})
	if _, err := src.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)
	crash(p)
	dst.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.ReadFull(dst, make([]byte, 2))
	if !errors.Is(err, ErrResumeTimeout) {
		t.Fatalf("destination Read: %v, want ErrResumeTimeout", err)
	}
	if g.table.Len() != 0 {
		t.Errorf("table still holds the circuit after its timeout")
	}
	close(gate)
	src.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = src.Read(make([]byte, 1))
	if !errors.Is(err, ErrResumeRefused) {
		t.Fatalf("source Read: %v, want ErrResumeRefused", err)
	}
	if n := g.redials.Load(); n != 1 {
		t.Errorf("source tried %d resumes after the refusal, want 1", n)
	}
}

// A source that finds no path within its timeout gives up with
// ErrResumeTimeout.
func TestResumeSourceTimeout(t *testing.T) {
	g := newResumeRig(t)
	var tries atomic.Int64
	scfg := ResumeConfig{Timeout: 400 * time.Millisecond, Redial: func(ctx context.Context) (Path, error) {
		tries.Add(1)
		return nil, links.ErrLinkLost
	}}
	p, src, _ := g.pair(scfg, ResumeConfig{Timeout: 400 * time.Millisecond})
	if _, err := src.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)
	crash(p)
	src.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := src.Read(make([]byte, 1))
	if !errors.Is(err, ErrResumeTimeout) {
		t.Fatalf("source Read: %v, want ErrResumeTimeout", err)
	}
	if tries.Load() < 2 {
		t.Errorf("source tried %d paths, want retries until the timeout", tries.Load())
	}
}

// Deliberate endings are never resumed: the application's Reset reaches
// the other end as an error and no new path is opened.
func TestResumeNotOnDeliberateReset(t *testing.T) {
	g := newResumeRig(t)
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
	if _, err := src.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)
	dst.Reset(CloseCancelled)
	src.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := src.Read(make([]byte, 1))
	var re *ResetError
	if !errors.As(err, &re) || re.Code.Reason() != CloseCancelled {
		t.Fatalf("source Read after the destination's Reset: %v, want a reset (cancelled)", err)
	}
	if g.redials.Load() != 0 {
		t.Errorf("a deliberate reset was resumed")
	}
}

// The resumable conn is a net.Conn like any other.
func TestNettestResumable(t *testing.T) {
	g := newResumeRig(t)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		_, src, dst := g.pair(ResumeConfig{Window: 64 << 10}, ResumeConfig{Window: 64 << 10})
		return src, dst, func() {
			src.Close()
			dst.Close()
			src.Reset(CloseCancelled)
			dst.Reset(CloseCancelled)
			src.Wait()
			dst.Wait()
		}, nil
	})
}

// Close delivers what was written before it, and both ends end.
func TestResumableCloseDelivers(t *testing.T) {
	g := newResumeRig(t)
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
	msg := bytes.Repeat([]byte("m"), 300_000)
	if _, err := src.Write(msg); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(dst)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("destination read %d bytes, %v", len(got), err)
	}
	dst.Close()
	src.Wait()
	dst.Wait()
}

// bytesPath is a path whose other end sent b and then closed cleanly.
type bytesPath struct{ r *bytes.Reader }

func (p bytesPath) Read(b []byte) (int, error)      { return p.r.Read(b) }
func (p bytesPath) Write(b []byte) (int, error)     { return len(b), nil }
func (p bytesPath) Close() error                    { return nil }
func (p bytesPath) Reset(uint64)                    {}
func (p bytesPath) SetReadDeadline(time.Time) error { return nil }

// The frame decoders take anything without a panic, end the circuit, and
// leave nothing in the table.
func FuzzResumableFrames(f *testing.F) {
	var id [idLen]byte
	hello := append([]byte{frameHello}, id[:]...)
	f.Add(hello)
	f.Add(append(append(append([]byte{}, hello...), frameData, 0, 3, 'a', 'b', 'c'), frameFin))
	f.Add(append(append([]byte{}, hello...), frameAck, 0, 0, 0, 0, 0, 0, 0, 1))
	f.Add(append(append([]byte{}, hello...), frameData, 0, 0))
	f.Add([]byte{frameData, 0, 1, 'x'})
	f.Add(binary.BigEndian.AppendUint64(append([]byte{frameResume}, id[:]...), 7))
	f.Add(append(append([]byte{}, hello...), framePing, framePong, frameData, 0, 1, 'x', framePing))
	f.Add(append(append([]byte{}, hello...), framePong))
	f.Add([]byte{framePing})
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, b []byte) {
		table := NewResumeTable()
		r := NewResumableDest(bytesPath{bytes.NewReader(b)}, Addr{"d", "echo"}, Addr{"s", "echo"}, table, "s", "echo", ResumeConfig{Window: 1 << 10})
		r.Wait()
		if table.Len() != 0 {
			t.Fatal("an ended circuit stayed in the table")
		}
		buf := make([]byte, 64)
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
		_, _ = table.Resume(bytesPath{bytes.NewReader(b)}, "s", "echo", time.Now().Add(time.Second))
		r.Reset(CloseCancelled)
		// The same bytes as the open's early data.
		p := newRecPath(b, len(b))
		r = NewResumableDest(p, Addr{"d", "echo"}, Addr{"s", "echo"}, table, "s", "echo", ResumeConfig{Window: 1 << 10})
		p.Close()
		r.Wait()
		if table.Len() != 0 {
			t.Fatal("an ended circuit stayed in the table")
		}
	})
}

// A destination whose application does not read, through two relay
// crashes: each resume reports what arrived, not what was read, and that
// gives the source no credit, so the circuit survives both resumes (no
// "sent beyond its window") and, once the application reads, every byte
// arrives once and in order.
func TestResumeTwiceWhileNotReading(t *testing.T) {
	const window = 64 << 10
	g := newResumeRig(t)
	cfg := ResumeConfig{Window: window}
	p, src, dst := g.pair(cfg, cfg)
	data, writeErr := writeAndClose(src, 8*window, 'c')
	waitRegistered(t, g.table, 1)
	path := p
	for i := 1; ; i++ {
		// The source sent all it may and it arrived, unread; the relay
		// crashes (twice), and after the second resume the source again
		// sends only what the window allows.
		waitFor(t, func() bool {
			src.mu.Lock()
			sent, credit := src.written, src.credit
			src.mu.Unlock()
			dst.mu.Lock()
			defer dst.mu.Unlock()
			if dst.err != nil {
				t.Fatalf("after %d crashes the destination failed: %v", i-1, dst.err)
			}
			return sent-credit == window && dst.recv == sent
		})
		if i > 2 {
			break
		}
		crash(path)
		waitFor(t, func() bool { return src.Resumes() >= int64(i) && dst.Resumes() >= int64(i) })
		g.mu.Lock()
		path = g.paths[len(g.paths)-1]
		g.mu.Unlock()
	}
	dst.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(dst)
	if err != nil {
		t.Fatalf("destination read %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("destination read %d bytes that differ from the %d written", len(got), len(data))
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
}

// The data path's shortcuts carry the bytes intact and in order, before
// and after a resume: frames sealed where they are laid out, data copied
// from the decrypted record straight into a waiting Read, and a record's
// data queued in the record's own buffer, records sealed from the
// retransmit ring while the path writes the ones before, two of them
// in one write. The writer sends chunks of
// varied sizes one at a time, each once the last was read; the reader
// waits in Read for every other chunk (with a buffer smaller than a
// frame), and reads the others only once they arrived; the relay crashes
// half way.
func TestResumeFastPathsAcrossCrash(t *testing.T) {
	const chunks = 160
	g := newResumeRig(t)
	p, src, dst := g.pair(ResumeConfig{Window: 256 << 10}, ResumeConfig{Window: 256 << 10})
	rng := mrand.New(mrand.NewPCG(10, 14))
	ends := make([]int, chunks)
	size := 0
	for i := range ends {
		size += 1 + rng.IntN(150_000) // up to five frames
		ends[i] = size
	}
	data := make([]byte, size)
	_, _ = mrand.NewChaCha8([32]byte{10}).Read(data)

	received := func(n int) bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.recv >= int64(n)
	}
	read := make(chan int, chunks) // chunks read in full, in order
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 16<<10)
		off := 0
		for i, end := range ends {
			if i%2 == 1 {
				// Late: the chunk is queued before the Read.
				deadline := time.Now().Add(30 * time.Second)
				for !received(end) {
					if time.Now().After(deadline) {
						readErr <- fmt.Errorf("chunk %d not received in 30 s", i)
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
			for off < end {
				n, err := dst.Read(buf[:min(len(buf), end-off)])
				if n > 0 && !bytes.Equal(buf[:n], data[off:off+n]) {
					readErr <- fmt.Errorf("bytes %d..%d differ from those written", off, off+n)
					return
				}
				off += n
				if err != nil {
					readErr <- fmt.Errorf("read after %d of %d bytes: %w", off, size, err)
					return
				}
			}
			read <- i
		}
		readErr <- nil
	}()

	type counts struct{ direct, held, inPlace, fromRing, batched int64 }
	now := func() counts {
		return counts{dst.fast.direct.Load(), dst.fast.held.Load(), src.fast.inPlace.Load(), src.fast.fromRing.Load(), src.fast.batched.Load()}
	}
	var before counts
	start := 0
	for i, end := range ends {
		if i == chunks/2 {
			before = now()
			crash(p)
		}
		if _, err := src.Write(data[start:end]); err != nil {
			t.Fatalf("write of chunk %d: %v", i, err)
		}
		start = end
		select {
		case <-read:
		case err := <-readErr:
			t.Fatalf("reader stopped at chunk %d: %v", i, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("chunk %d not read in 30 s", i)
		}
	}
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	if src.Resumes() < 1 {
		t.Fatalf("the circuit did not resume after the relay crashed")
	}
	after := now()
	if before.direct == 0 || after.direct == before.direct {
		t.Errorf("bytes delivered straight into a waiting Read: %d before the crash, %d in all; want some on each path", before.direct, after.direct)
	}
	if before.held == 0 || after.held == before.held {
		t.Errorf("bytes queued in their record: %d before the crash, %d in all; want some on each path", before.held, after.held)
	}
	if before.inPlace == 0 || after.inPlace == before.inPlace {
		t.Errorf("records sealed in place: %d before the crash, %d in all; want some on each path", before.inPlace, after.inPlace)
	}
	if before.fromRing == 0 || after.fromRing == before.fromRing {
		t.Errorf("records sealed from the retransmit ring: %d before the crash, %d in all; want some on each path", before.fromRing, after.fromRing)
	}
	if before.batched == 0 || after.batched == before.batched {
		t.Errorf("records written after another in one write: %d before the crash, %d in all; want some on each path", before.batched, after.batched)
	}
	if got := dst.BytesIn(); got != int64(size) {
		t.Errorf("BytesIn %d, want %d", got, size)
	}
}

// defaultPair is pair with default configurations, both ends reset and
// waited for when the test ends.
func (g *resumeRig) defaultPair(t *testing.T) (src, dst *Resumable) {
	_, src, dst = g.pair(ResumeConfig{}, ResumeConfig{})
	t.Cleanup(func() {
		src.Reset(CloseCancelled)
		dst.Reset(CloseCancelled)
		src.Wait()
		dst.Wait()
	})
	return src, dst
}

// Data that arrives while the application does not read queues in the
// records it came in, several of them, then in the receive ring once a
// quarter of the window is held that way: Reads of any size return it
// all, in order, across both.
func TestResumeHeldRecordsInOrder(t *testing.T) {
	src, dst := newResumeRig(t).defaultPair(t)
	rng := mrand.New(mrand.NewPCG(14, 8))
	data := make([]byte, 2<<20)
	_, _ = mrand.NewChaCha8([32]byte{14}).Read(data)
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+rng.IntN(100_000))
		if _, err := src.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	waitFor(t, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.recv == int64(len(data))
	})
	dst.mu.Lock()
	held, bufs, queued, max := len(dst.held), dst.heldBufs, dst.rq.len(), dst.maxHeldLocked()
	dst.mu.Unlock()
	// Held until no record of any size fits the bound.
	if held == 0 || bufs > max || bufs+seal.MaxLargeRecord <= max || queued == 0 {
		t.Errorf("%d records held in %d bytes of buffers and %d bytes in the ring, want up to %d bytes held, less than a record short, and the rest in the ring", held, bufs, queued, max)
	}
	got := make([]byte, 0, len(data))
	for len(got) < len(data) {
		b := make([]byte, 1+rng.IntN(100_000))
		n, err := dst.Read(b)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, b[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes read differ from those written")
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if len(dst.held) != 0 || dst.heldBytes != 0 {
		t.Errorf("%d records (%d bytes) still held after everything was read", len(dst.held), dst.heldBytes)
	}
}

// The goroutine that writes records sealed ahead runs only while some are
// in flight: a circuit that carried a bulk transfer and went quiet holds
// none, and the next transfer starts another.
func TestResumePipeEndsWhenIdle(t *testing.T) {
	src, dst := newResumeRig(t).defaultPair(t)
	data := make([]byte, 1<<20)
	_, _ = mrand.NewChaCha8([32]byte{3}).Read(data)
	got := make([]byte, len(data))
	for round := range 2 {
		before := src.fast.fromRing.Load()
		writeErr := make(chan error, 1)
		go func() {
			_, err := src.Write(data)
			writeErr <- err
		}()
		if _, err := io.ReadFull(dst, got); err != nil {
			t.Fatalf("round %d: read: %v", round, err)
		}
		if err := <-writeErr; err != nil {
			t.Fatalf("round %d: write: %v", round, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round %d: the bytes read differ from those written", round)
		}
		if src.fast.fromRing.Load() == before {
			t.Fatalf("round %d: no record was sealed ahead from the ring", round)
		}
		waitFor(t, func() bool {
			src.mu.Lock()
			defer src.mu.Unlock()
			return !src.piping && src.inflight == 0
		})
	}
}

// An acknowledgement that rode on the answer to a small message is not
// due again when its delay runs out: else the next small message's ack
// went at once in a frame of its own, beside the answer, two packets
// per message through every relay.
func TestResumeAckDelayNotStaleAfterRide(t *testing.T) {
	src, dst := newResumeRig(t).defaultPair(t)
	b := make([]byte, 1)
	for range 3 {
		if _, err := src.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(dst, b); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(src, b); err != nil {
			t.Fatal(err)
		}
	}
	// The destination's delayed-ack timer runs out.
	waitFor(t, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.ackTimer == nil
	})
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if a := dst.ackableLocked(); a > dst.ackSent {
		t.Fatalf("the destination has %d bytes read and unacknowledged after answering", a-dst.ackSent)
	}
	if dst.ackNow {
		t.Error("an acknowledgement is due although it rode on the answer")
	}
}

// lossPath is a Path over one end of a net.Pipe whose failure, once lose
// was called, is a lost link.
type lossPath struct {
	net.Conn
	lost *atomic.Bool
}

func (p lossPath) Read(b []byte) (int, error) {
	n, err := p.Conn.Read(b)
	if err != nil && p.lost.Load() {
		err = fmt.Errorf("%w: %w", links.ErrLinkLost, err)
	}
	return n, err
}

func (p lossPath) Reset(uint64) { p.Conn.Close() }

// A resume that overtakes the hello of the circuit it names (the hello is
// on the old path's way, or in its buffer, not read yet: a link on the
// path died while the destination was slow) is not refused: the
// destination waits for the hello and the circuit resumes, every byte in
// order.
func TestResumeOvertakesHello(t *testing.T) {
	table := NewResumeTable()
	// The first path: source ⇄ relay ⇄ destination. The relay holds what
	// the source sends until release.
	sA, rA := net.Pipe()
	dB, rB := net.Pipe()
	var lost atomic.Bool
	release := make(chan struct{})
	held := make(chan []byte, 1)
	msg := []byte("every byte once and in order")
	go func() { // source → relay: the hello and the data frame, held
		b := make([]byte, 1+idLen+3+len(msg))
		io.ReadFull(rA, b)
		held <- b
	}()
	go io.Copy(io.Discard, rB) // destination → relay
	resumeRead := make(chan struct{}, 1)
	var resumeErr = make(chan error, 1)
	redial := func(ctx context.Context) (Path, error) {
		a, b := net.Pipe()
		go func() {
			_, err := table.Resume(readSignal{pipePath{b}, resumeRead}, "s", "echo", time.Now().Add(10*time.Second))
			resumeErr <- err
		}()
		return pipePath{a}, nil
	}
	src, err := NewResumableSource(lossPath{sA, &lost}, nil, nil, ResumeConfig{Redial: redial})
	if err != nil {
		t.Fatal(err)
	}
	dst := NewResumableDest(lossPath{dB, &lost}, nil, nil, table, "s", "echo", ResumeConfig{})
	defer func() {
		src.Reset(CloseCancelled)
		dst.Reset(CloseCancelled)
		src.Wait()
		dst.Wait()
	}()
	if _, err := src.Write(msg); err != nil {
		t.Fatal(err)
	}
	// Once the relay holds the hello and the data, the source's link
	// dies; the relay forwards what it holds only once the destination
	// has read the resume frame.
	b := <-held
	lost.Store(true)
	rA.Close()
	go func() {
		select {
		case <-resumeRead:
		case <-release:
			return
		}
		// The resume looks the circuit up first and waits for its hello.
		for !resumeWaiting(table) {
			select {
			case <-release:
				return
			case <-time.After(time.Millisecond):
			}
		}
		rB.Write(b)
	}()
	defer close(release)
	dst.SetReadDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(dst, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("destination read %q, %v; want %q (resume: %v)", got, err, msg, <-resumeErr)
	}
	if err := <-resumeErr; err != nil {
		t.Fatalf("destination's Resume: %v", err)
	}
	if _, err := dst.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	src.SetReadDeadline(time.Now().Add(20 * time.Second))
	back := make([]byte, 4)
	if _, err := io.ReadFull(src, back); err != nil || string(back) != "back" {
		t.Fatalf("source read %q, %v", back, err)
	}
	if src.Resumes() != 1 || dst.Resumes() != 1 {
		t.Errorf("resumes: source %d, destination %d; want 1 each", src.Resumes(), dst.Resumes())
	}
	if table.woken.Load() == 0 {
		t.Error("the resume found its circuit without waiting for the hello: it did not overtake it")
	}
}

// resumeWaiting reports whether a resume waits in table for the circuit
// it names to register.
func resumeWaiting(table *ResumeTable) bool {
	table.mu.Lock()
	defer table.mu.Unlock()
	return len(table.byKey) > 0
}

// readSignal is a Path that signals once its first Read returned (the
// resume frame read).
type readSignal struct {
	Path
	read chan struct{}
}

func (p readSignal) Read(b []byte) (int, error) {
	n, err := p.Path.Read(b)
	select {
	case p.read <- struct{}{}:
	default:
	}
	return n, err
}

// TestResumeEchoWakesNoIdleWriter: on a resumable circuit carrying small
// requests and answers, each acknowledgement rides with the answer, and
// the writer goroutine of neither end is woken for it: an answer's
// acknowledgement wakes only a Write waiting for room and a writeLoop
// with something to send (each end's Write sends its small frames
// itself).
func TestResumeEchoWakesNoIdleWriter(t *testing.T) {
	const echoes = 300
	g := newResumeRig(t)
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
	go echoBytes(dst)
	buf := []byte{'x'}
	for i := range echoes {
		if _, err := src.Write(buf); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
		if _, err := io.ReadFull(src, buf); err != nil {
			t.Fatalf("echo %d: %v", i, err)
		}
	}
	t.Logf("writers woken with nothing to send: %d in %d echoes", src.fast.idleWaits.Load()+dst.fast.idleWaits.Load(), echoes)
	// The delayed acknowledgement of the last answers and the first
	// flight may each wake a writeLoop; an acknowledgement riding with
	// each answer woke one at every echo.
	if idle := src.fast.idleWaits.Load() + dst.fast.idleWaits.Load(); idle > echoes/4 {
		t.Errorf("the writers of both ends went back to waiting with nothing to send %d times in %d echoes", idle, echoes)
	}
}

// TestResumeAckRidesWithNextRequest: an application that sends its next
// request a little after reading the answer to its last one (well within
// the acknowledgement delay, while the delay armed for an earlier answer
// runs out) has each answer acknowledged by its next request: no record
// carries an acknowledgement alone.
func TestResumeAckRidesWithNextRequest(t *testing.T) {
	src, dst := newResumeRig(t).defaultPair(t)
	go echoBytes(dst)
	buf := []byte{'x'}
	start := time.Now()
	echoes, late := 0, 0 // late: requests sent ackDelay or more after the last answer
	for time.Since(start) < 16*ackDelay {
		if _, err := src.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(src, buf); err != nil {
			t.Fatal(err)
		}
		echoes++
		read := time.Now()
		time.Sleep(ackDelay / 5)
		if time.Since(read) >= ackDelay {
			late++ // a loaded machine: that answer's ack was due alone
		}
	}
	// The last answer's acknowledgement may go alone before the count.
	if n := src.fast.ackOnly.Load(); n > int64(late)+1 {
		t.Errorf("the source sent %d records with an acknowledgement alone in %d echoes over %v (%d requests came %v or more after the answer before), each answer's acknowledgement could ride on the next request",
			n, echoes, time.Since(start).Round(time.Millisecond), late, ackDelay)
	}
}

// echoBytes writes back every byte it reads from rw, one at a time, until
// a read or write fails.
func echoBytes(rw io.ReadWriter) {
	buf := make([]byte, 1)
	for {
		if _, err := io.ReadFull(rw, buf); err != nil {
			return
		}
		if _, err := rw.Write(buf); err != nil {
			return
		}
	}
}

// echoExchange runs one short exchange on a new resumable pair whose
// source is early (as a node's dials with data are: its hello goes with
// the first Write) the way a node's echo service serves it (copy until
// the end of stream, half-close, close) and returns both ends once they
// ended.
func echoExchange(t *testing.T) (src, dst *Resumable) {
	t.Helper()
	_, src, dst = newResumeRig(t).pair(ResumeConfig{Early: true}, ResumeConfig{})
	served := make(chan error, 1)
	go func() {
		_, err := io.Copy(dst, dst)
		if err == nil {
			err = dst.CloseWrite()
		}
		dst.Close()
		served <- err
	}()
	buf := []byte{'x'}
	if _, err := src.Write(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(src, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	src.Close()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	src.Wait()
	dst.Wait()
	return src, dst
}

// TestResumeEndedArmsNoAckTimer: a short exchange leaves no delayed
// acknowledgement armed at either end once the circuit ended: an ended
// circuit sends nothing, and a timer armed for it would only start a
// goroutine that finds nothing due, once per circuit.
func TestResumeEndedArmsNoAckTimer(t *testing.T) {
	for i := range 20 {
		src, dst := echoExchange(t)
		for name, r := range map[string]*Resumable{"source": src, "destination": dst} {
			r.mu.Lock()
			armed := r.ackTimer != nil
			r.mu.Unlock()
			if armed {
				t.Fatalf("exchange %d: the %s ended with a delayed acknowledgement armed", i, name)
			}
		}
	}
}

// TestResumeShortExchangeStartsNoWriter: when every frame of a circuit
// went out from the Write, CloseWrite or Close that queued it, and the end
// came in on the path (the other end's clean close, or the ack of this
// end's fin), no writer goroutine was started at either end: the reader
// closed the path, and both ends ended cleanly.
func TestResumeShortExchangeStartsNoWriter(t *testing.T) {
	started := 0
	for range 20 {
		src, dst := echoExchange(t)
		for _, r := range []*Resumable{src, dst} {
			r.mu.Lock()
			if r.wstarted {
				started++
			}
			if !r.cleanClose || r.cur != nil {
				t.Errorf("an end finished with clean close %v, path left open %v", r.cleanClose, r.cur != nil)
			}
			r.mu.Unlock()
		}
	}
	// An acknowledgement whose delay ran out (a loaded machine) needs
	// the writer now and then.
	if started > 10 {
		t.Errorf("%d of 40 ends of short exchanges started a writer goroutine", started)
	}
}

// TestResumeFinWakesNoIdleWriter: the end of stream arriving at an end
// that has nothing to answer yet (its application still reading, its
// acknowledgements sent) wakes the reader, not the writer, which would
// find nothing to send: the fin's own acknowledgement waits for its delay
// or rides on the application's answer.
func TestResumeFinWakesNoIdleWriter(t *testing.T) {
	woken, seen := 0, 0
	for i := 0; i < 10 || seen < 5 && i < 50; i++ {
		src, dst := newResumeRig(t).defaultPair(t)
		if _, err := src.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 7)
		if _, err := io.ReadFull(dst, b); err != nil {
			t.Fatal(err)
		}
		// Wait until the request's acknowledgement left (its delay) and
		// the writer went back to waiting: nothing is due at dst.
		settled := func() bool {
			dst.mu.Lock()
			defer dst.mu.Unlock()
			return dst.ackSent == dst.recv && !dst.writing
		}
		for !settled() {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Millisecond)
		before := dst.fast.idleWaits.Load()
		if err := src.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := dst.Read(b); err != io.EOF {
			t.Fatalf("circuit %d: read %v after the fin, want io.EOF", i, err)
		}
		time.Sleep(time.Millisecond) // a writer woken by the fin gets to run
		dst.mu.Lock()
		acked := dst.ackSent == dst.recv // the fin's ack went (its delay ran out): no verdict
		dst.mu.Unlock()
		if acked {
			continue
		}
		seen++
		if dst.fast.idleWaits.Load() > before {
			woken++
		}
	}
	if seen == 0 {
		t.Skip("the fin's acknowledgement delay ran out before every check (a loaded machine)")
	}
	if woken > 0 {
		t.Errorf("the fin woke the destination's writer for nothing on %d of %d circuits", woken, seen)
	}
}

// TestResumeDeadlinesAndCloseNeverCancel: read deadlines that run out
// again and again while a transfer arrives, and the other end's Close
// right after it, end Reads with a timeout and then io.EOF: the circuit
// is never cancelled, every byte arrives, and both ends end cleanly.
func TestResumeDeadlinesAndCloseNeverCancel(t *testing.T) {
	_, src, dst := newResumeRig(t).pair(ResumeConfig{Early: true}, ResumeConfig{})
	data := make([]byte, 256<<10)
	_, _ = mrand.NewChaCha8([32]byte{7}).Read(data)
	go func() {
		for off := 0; off < len(data); off += 10000 {
			if _, err := src.Write(data[off:min(off+10000, len(data))]); err != nil {
				return
			}
		}
		src.Close()
	}()
	var got []byte
	buf := make([]byte, 3000)
	timeouts := 0
	for {
		dst.SetReadDeadline(time.Now().Add(100 * time.Microsecond))
		n, err := dst.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timeouts++
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes and %d timeouts: %v", len(got), timeouts, err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d sent", len(got), len(data))
	}
	dst.Close()
	src.Wait()
	dst.Wait()
	for name, r := range map[string]*Resumable{"source": src, "destination": dst} {
		r.mu.Lock()
		if !r.cleanClose || r.err != nil && !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("the %s ended with clean close %v, error %v", name, r.cleanClose, r.err)
		}
		r.mu.Unlock()
	}
	t.Logf("%d reads timed out", timeouts)
}
