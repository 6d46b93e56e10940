package circuit

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// endReadLate is a finHeldStream whose Reads, once its CloseWrite began,
// return only after that CloseWrite returned and written reports that the
// circuit acted on its outcome: what came with the peer's stop (its end
// record, FIN) is read after the failed FIN, the order a reader that runs
// late sees.
type endReadLate struct {
	finHeldStream
	closing atomic.Bool
	closed  chan struct{} // CloseWrite returned
	written func() bool
}

func (e *endReadLate) CloseWrite() error {
	e.closing.Store(true)
	defer close(e.closed)
	return e.finHeldStream.CloseWrite()
}

func (e *endReadLate) Read(b []byte) (int, error) {
	n, err := e.Stream.Read(b)
	if e.closing.Load() {
		<-e.closed
		for end := time.Now().Add(20 * time.Second); !e.written() && time.Now().Before(end); time.Sleep(time.Millisecond) {
		}
	}
	return n, err
}

// The source half-closes; the destination reads to io.EOF, answers and
// closes, which writes its fin, the path's end record and FIN in one
// write. The source reads them, ends and closes the path (STOP_SENDING
// with CloseNormal) before that FIN left, so the FIN fails; the
// destination reads the source's end only after acting on that failure.
// CloseWrite, and Close after it, succeed, the answer arrives, no path
// fails and both ends end cleanly.
func TestResumableCloseWriteAfterPeerReadEnd(t *testing.T) {
	k := newSealKeys(t)
	p := newPath(t, 0, nil)
	o := resumableOpen(0)
	f := &endReadLate{closed: make(chan struct{})}
	c, err := p.connectWith(o, func(s links.Stream, o *Open) (*Conn, error) {
		f.Stream = s
		return k.accept(f, o)
	}, k.dial(o, false, false, false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	onFailed := func(p Path, err error) { t.Errorf("path failed: %v", err) }
	src, err := NewResumableSource(c.caller, c.caller.LocalAddr(), c.caller.RemoteAddr(), ResumeConfig{Redial: noRedial, OnPathFailed: onFailed})
	if err != nil {
		t.Fatal(err)
	}
	dst := NewResumableDest(c.dest, c.dest.LocalAddr(), c.dest.RemoteAddr(), NewResumeTable(), "s", "echo", ResumeConfig{OnPathFailed: onFailed})
	f.written = func() bool { // the write that ended in CloseWrite was acted on
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return !dst.writing
	}
	defer func() {
		src.Reset(CloseCancelled)
		dst.Reset(CloseCancelled)
		waitEnded(t, src)
		waitEnded(t, dst)
	}()

	const size = 1 << 20
	sink := make(chan error, 1)
	go func() { // reads to EOF, answers with the count, closes
		n, err := io.Copy(io.Discard, dst)
		if err == nil {
			var ack [8]byte
			binary.BigEndian.PutUint64(ack[:], uint64(n))
			_, err = dst.Write(ack[:])
		}
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		sink <- err
	}()
	if _, err := src.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := src.CloseWrite(); err != nil {
		t.Errorf("CloseWrite = %v, want nil", err)
	}
	var ack [8]byte
	if _, err := io.ReadFull(src, ack[:]); err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	if n := binary.BigEndian.Uint64(ack[:]); n != size {
		t.Errorf("destination read %d bytes, want %d", n, size)
	}
	if n, err := src.Read(ack[:]); n != 0 || err != io.EOF {
		t.Errorf("read after the answer = %d, %v, want 0, io.EOF", n, err)
	}
	if err := <-sink; err != nil {
		t.Errorf("destination: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close after CloseWrite = %v, want nil", err)
	}
	waitEnded(t, src)
	waitEnded(t, dst)
	if !f.stopped.Load() {
		t.Error("the source's close did not stop the destination's write side before its FIN: the case under test did not happen")
	}
	for name, r := range map[string]*Resumable{"source": src, "destination": dst} {
		r.mu.Lock()
		if !r.cleanClose {
			t.Errorf("the %s ended with %v, want a clean end", name, r.err)
		}
		r.mu.Unlock()
	}
}

// A resumable CloseWrite while the circuit has no path (the relay crashed,
// the resume not yet done) succeeds: once a new path took over, the other
// end reads everything written and then io.EOF, its answer arrives, and
// Close after CloseWrite ends both ends.
func TestResumableCloseWriteWhileResuming(t *testing.T) {
	g := newResumeRig(t)
	lost := make(chan struct{}, 1)
	release := make(chan struct{})
	scfg := ResumeConfig{
		OnPathFailed: func(Path, error) {
			select {
			case lost <- struct{}{}:
			default:
			}
		},
		Redial: func(ctx context.Context) (Path, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return g.redial(ctx)
		},
	}
	p, src, dst := g.pair(scfg, ResumeConfig{})
	served := serveEcho(dst)
	echoByte(t, src, 'a')
	waitRegistered(t, g.table, 1)
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i)
	}
	if _, err := src.Write(data); err != nil {
		t.Fatal(err)
	}
	crash(p)
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("the source did not see its path fail")
	}
	if src.Current() != nil {
		t.Fatal("the source has a path while its Redial is held")
	}
	if err := src.CloseWrite(); err != nil {
		t.Errorf("CloseWrite while resuming = %v, want nil", err)
	}
	close(release)
	back, err := io.ReadAll(src)
	if err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if !bytes.Equal(back, data) {
		t.Errorf("echo: %d bytes, want the %d written", len(back), len(data))
	}
	if err := <-served; err != nil {
		t.Errorf("echo: %v", err)
	}
	if src.Resumes() != 1 {
		t.Errorf("resumes: %d, want 1", src.Resumes())
	}
	if err := src.Close(); err != nil {
		t.Errorf("Close after CloseWrite = %v, want nil", err)
	}
	if err := dst.Close(); err != nil {
		t.Errorf("destination Close = %v, want nil", err)
	}
	waitEnded(t, src)
	waitEnded(t, dst)
}
