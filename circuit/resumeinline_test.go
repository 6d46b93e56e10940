package circuit

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// TestResumeFirstReadInline: the first Read of an early source whose
// first flight left inline reads the answer off the path itself (no
// goroutine of the circuit hands it over), and the circuit then goes on
// as before: the echo is right, both ends end cleanly, Wait returns.
func TestResumeFirstReadInline(t *testing.T) {
	inline := 0
	const n = 20
	for range n {
		src, _ := echoExchange(t)
		inline += int(src.fast.inline.Load())
		src.mu.Lock()
		if !src.cleanClose || src.rdefer || src.rinline {
			t.Errorf("source ended with clean close %v, reader deferred %v, read inline %v", src.cleanClose, src.rdefer, src.rinline)
		}
		src.mu.Unlock()
	}
	// A Read that comes after readerGrace (a loaded machine) finds
	// readLoop started.
	if inline < n/2 {
		t.Errorf("%d of %d first Reads read the path themselves", inline, n)
	}
}

// waitInline waits until a Read of r reads its path itself.
func waitInline(t *testing.T, r *Resumable) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		r.mu.Lock()
		in := r.rinline
		r.mu.Unlock()
		if in {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no Read reads the path itself")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// inlineSource opens an early pair, sends the first flight and starts
// the source's first Read, which reads the path itself; the Read's
// result comes on the channel.
func inlineSource(t *testing.T) (src, dst *Resumable, got chan readResult) {
	t.Helper()
	_, src, dst = newResumeRig(t).pair(ResumeConfig{Early: true}, ResumeConfig{})
	src.grace = time.Minute // the Read below comes first, however loaded the machine
	if _, err := src.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	got = make(chan readResult, 1)
	go func() {
		b := make([]byte, 16)
		n, err := src.Read(b)
		got <- readResult{b[:n], err}
	}()
	waitInline(t, src)
	return src, dst, got
}

type readResult struct {
	b   []byte
	err error
}

// TestResumeInlineReadDeadline: a read deadline set while the first Read
// reads the path itself ends that Read at the deadline, and the path is
// intact: what comes later is read, on the same path.
func TestResumeInlineReadDeadline(t *testing.T) {
	src, dst, got := inlineSource(t)
	if err := src.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("read %q, %v; want the deadline exceeded", r.b, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Read outlived its deadline")
	}
	src.SetReadDeadline(time.Time{})
	if _, err := dst.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(src, b); err != nil || string(b) != "late" {
		t.Fatalf("read %q, %v after the deadline", b, err)
	}
	if src.Resumes() != 0 {
		t.Errorf("the path was replaced: %d resumes", src.Resumes())
	}
}

// TestResumeInlineReadClose: Close while the first Read reads the path
// itself ends that Read with net.ErrClosed at once, and the circuit
// still ends cleanly once the other end closes.
func TestResumeInlineReadClose(t *testing.T) {
	src, dst, got := inlineSource(t)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("read %q, %v; want net.ErrClosed", r.b, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Read outlived Close")
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(dst, b); err != nil || b[0] != 'q' {
		t.Fatalf("destination read %q, %v", b, err)
	}
	if _, err := dst.Read(b); err != io.EOF {
		t.Fatalf("destination read %v after the data, want io.EOF", err)
	}
	dst.Close()
	src.Wait()
	dst.Wait()
	src.mu.Lock()
	defer src.mu.Unlock()
	if !src.cleanClose || src.Resumes() != 0 {
		t.Errorf("source ended with clean close %v after %d resumes", src.cleanClose, src.Resumes())
	}
}

// TestResumeInlineReadInterruptedAnywhere: a deadline that interrupts
// the first Read while it reads the path itself, at any point of a frame
// arriving, loses no byte and breaks no path: the bytes all come, in
// order, on the first path.
func TestResumeInlineReadInterruptedAnywhere(t *testing.T) {
	for i := range 40 {
		src, dst, got := inlineSource(t)
		msg := bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*97%3000)
		go dst.Write(msg)
		time.Sleep(time.Duration(i%8) * 50 * time.Microsecond)
		src.SetReadDeadline(time.Now())
		r := <-got
		if r.err != nil && !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("round %d: first read %v", i, r.err)
		}
		src.SetReadDeadline(time.Time{})
		rest := make([]byte, len(msg)-len(r.b))
		if _, err := io.ReadFull(src, rest); err != nil {
			t.Fatalf("round %d: read %v after %d bytes", i, err, len(r.b))
		}
		if all := append(r.b, rest...); !bytes.Equal(all, msg) {
			t.Fatalf("round %d: read %d bytes unlike the %d sent", i, len(all), len(msg))
		}
		if src.Resumes() != 0 {
			t.Fatalf("round %d: the path was replaced", i)
		}
	}
}

// TestResumeDeferredReaderWithoutRead: an early source that sends its
// first flight and never reads still takes the other end's
// acknowledgement (its reader starts after readerGrace): what it wrote is
// released from its retransmit buffer.
func TestResumeDeferredReaderWithoutRead(t *testing.T) {
	_, src, dst := newResumeRig(t).pair(ResumeConfig{Early: true}, ResumeConfig{})
	if _, err := src.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(dst, b); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		src.mu.Lock()
		acked := src.acked
		src.mu.Unlock()
		if acked == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged %d of 1 byte", acked)
		}
	}
}

// framePath is a Path serving fixed bytes whose read deadline, once set
// in the past, fails every Read from the from-th on, as a sealed Conn's
// does even with bytes decrypted: the deadline lands inside a frame.
type framePath struct {
	data  []byte
	reads int
	from  int
	dl    time.Time
}

func (f *framePath) Read(b []byte) (int, error) {
	f.reads++
	if f.reads >= f.from && !f.dl.IsZero() && !time.Now().Before(f.dl) {
		return 0, os.ErrDeadlineExceeded
	}
	if len(f.data) == 0 {
		return 0, io.EOF
	}
	n := copy(b, f.data)
	f.data = f.data[n:]
	return n, nil
}

func (f *framePath) Write(b []byte) (int, error)       { return len(b), nil }
func (f *framePath) Close() error                      { return nil }
func (f *framePath) Reset(uint64)                      {}
func (f *framePath) SetReadDeadline(t time.Time) error { f.dl = t; return nil }

// TestResumeInlineInterruptInsideFrame: an interruption of a Read reading
// the path itself that lands inside a frame does not cut the frame: it
// is read whole, the path's deadline is cleared, and the Read stops
// before the next frame.
func TestResumeInlineInterruptInsideFrame(t *testing.T) {
	// In the frame's head (the second Read), or in its data (the third).
	for from := 2; from <= 3; from++ {
		interruptInsideFrame(t, from)
	}
}

func interruptInsideFrame(t *testing.T, from int) {
	fp := &framePath{data: []byte{frameData, 0, 3, 'a', 'b', 'c', frameData, 0, 1, 'd'}, from: from}
	r := newResumable(fp, nil, nil, ResumeConfig{})
	r.source = true
	r.mu.Lock()
	r.rinline, r.rpath = true, fp
	r.interruptReadLocked()
	r.mu.Unlock()
	err := r.readPath(fp, r.gen, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.rstop || r.rq.len() == 0
	})
	if err != nil {
		t.Fatalf("interrupted from read %d: read the frame: %v", from, err)
	}
	got := make([]byte, r.rq.len())
	r.rq.copyOut(got, 0, len(got))
	if string(got) != "abc" || !fp.dl.IsZero() {
		t.Errorf("interrupted from read %d: queued %q, path deadline %v; want \"abc\" and none", from, got, fp.dl)
	}
}
