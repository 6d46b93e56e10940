package circuit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// recPath is a path that records what is written on it. Its reads return
// data, then block until it is closed; the first early bytes of data are
// reported as already received and opened (buffered), as a destination's
// early data.
type recPath struct {
	mu     sync.Mutex
	writes [][]byte
	data   []byte
	early  int
	closed bool
	done   chan struct{}
	// hold, when set, blocks every Write until closed; waits is what
	// writeWaits reports; werr, when set, fails every Write.
	hold, waits bool
	werr        error
}

func newRecPath(data []byte, early int) *recPath {
	return &recPath{data: data, early: early, done: make(chan struct{})}
}

func (p *recPath) Read(b []byte) (int, error) {
	p.mu.Lock()
	if len(p.data) > 0 {
		n := copy(b, p.data)
		p.data = p.data[n:]
		p.early = max(0, p.early-n)
		p.mu.Unlock()
		return n, nil
	}
	p.mu.Unlock()
	<-p.done
	return 0, io.ErrClosedPipe
}

func (p *recPath) buffered() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.data[:p.early]
}

func (p *recPath) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.writes = append(p.writes, append([]byte(nil), b...))
	hold, werr := p.hold, p.werr
	p.mu.Unlock()
	if werr != nil {
		return 0, werr
	}
	if hold {
		<-p.done
		return 0, io.ErrClosedPipe
	}
	return len(b), nil
}

func (p *recPath) written() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.writes...)
}

func (p *recPath) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
	return nil
}

func (p *recPath) Reset(uint64)                    { _ = p.Close() }
func (p *recPath) SetReadDeadline(time.Time) error { return nil }
func (p *recPath) writeWaits() bool                { return p.waits }

func noRedial(context.Context) (Path, error) { return nil, errors.New("no redial") }

// waitEnded waits (generously) for r's goroutines to end.
func waitEnded(t *testing.T, r *Resumable) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		r.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the circuit's goroutines did not end")
	}
}

// earlySource is an early resumable source on p that cannot redial (its
// resume timeout, 0 for the default), reset and waited for at the end of
// the test.
func earlySource(t *testing.T, p *recPath, timeout time.Duration) *Resumable {
	t.Helper()
	src, err := NewResumableSource(p, Addr{"s", "x"}, Addr{"d", "x"},
		ResumeConfig{Early: true, Redial: noRedial, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		src.Reset(CloseCancelled)
		_ = p.Close()
		waitEnded(t, src)
	})
	return src
}

// The first Write of an early resumable source puts the hello and its
// bytes on the path before it returns: the open leaves from the writer.
func TestResumableFirstFlightFromWrite(t *testing.T) {
	p := newRecPath(nil, 0)
	src := earlySource(t, p, 0)
	if _, err := src.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	w := p.written()
	want := append(append([]byte{frameHello}, src.id[:]...), frameData, 0, 2, 'h', 'i')
	if len(w) != 1 || !bytes.Equal(w[0], want) {
		t.Fatalf("path holds %x after the first Write, want one write %x", w, want)
	}
}

// A path whose write would wait for the other end (a full handshake) is
// written by writeLoop: the application's Write does not wait with it.
func TestResumableWriteDoesNotWaitForHandshake(t *testing.T) {
	p := newRecPath(nil, 0)
	p.hold, p.waits = true, true
	src := earlySource(t, p, 0)
	done := make(chan error, 1)
	go func() {
		_, err := src.Write([]byte("hi"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write waited for the path")
	}
	waitFor(t, func() bool { return len(p.written()) == 1 })
}

// A destination takes the hello and the whole data frames that came with
// the open before it is handed over: it is registered for resumes and its
// first Read finds the bytes; a frame cut short is read once the rest
// arrives.
func TestResumableDestTakesEarlyFrames(t *testing.T) {
	var id [idLen]byte
	id[0] = 7
	frames := append(append([]byte{frameHello}, id[:]...), frameData, 0, 3, 'a', 'b', 'c', frameData, 0, 4, 'd', 'e')
	early := len(frames) // the second data frame is cut: its last bytes come later
	p := newRecPath(append(frames, 'f', 'g'), early)
	table := NewResumeTable()
	dst := NewResumableDest(p, Addr{"d", "echo"}, Addr{"s", "echo"}, table, "s", "echo", ResumeConfig{})
	defer waitEnded(t, dst)
	defer dst.Reset(CloseCancelled)
	if table.Len() != 1 {
		t.Fatalf("table holds %d circuits once the destination was made, want 1", table.Len())
	}
	dst.mu.Lock()
	queued := dst.rq.len()
	dst.mu.Unlock()
	if queued < 3 {
		t.Fatalf("%d bytes queued once the destination was made, want the early frame's 3", queued)
	}
	dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(io.LimitReader(dst, 7))
	if err != nil || string(got) != "abcdefg" {
		t.Fatalf("read %q, %v; want abcdefg", got, err)
	}
}

// An early frame that breaks the framing ends the destination with an
// integrity failure and leaves nothing in the table.
func TestResumableDestBadEarlyFrame(t *testing.T) {
	var id [idLen]byte
	frames := append(append([]byte{frameHello}, id[:]...), frameData, 0, 0)
	p := newRecPath(frames, len(frames))
	table := NewResumeTable()
	dst := NewResumableDest(p, Addr{"d", "echo"}, Addr{"s", "echo"}, table, "s", "echo", ResumeConfig{})
	waitEnded(t, dst)
	if table.Len() != 0 {
		t.Fatal("a failed circuit stayed in the table")
	}
	if _, err := dst.Read(make([]byte, 1)); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Read: %v, want ErrIntegrity", err)
	}
}

// The fin is acknowledged with this end's own fin when the application
// answers it (one frame), else after the delay of small acknowledgements.
func TestResumableFinAckWaitsForAnswer(t *testing.T) {
	r := newResumable(newRecPath(nil, 0), Addr{"d", "echo"}, Addr{"s", "echo"}, ResumeConfig{})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gotFin, r.recv = true, 1
	if r.ackDueLocked() {
		t.Fatal("the fin's acknowledgement is due before this end answered it")
	}
	if r.ackTimer == nil {
		t.Fatal("no delayed acknowledgement armed for the fin")
	}
	r.ackTimer.Stop()
	r.ackTimer = nil
	r.finQueued = true
	if !r.ackDueLocked() {
		t.Fatal("the fin's acknowledgement is not due with this end's fin")
	}
}

// A circuit that ended cleanly with its own fin never sent (the other end
// closed the path first) and an acknowledgement already carried closes
// its path and ends: writeLoop writes nothing more.
func TestResumableEndedWithFinUnsent(t *testing.T) {
	p := newRecPath(nil, 0)
	r := newResumable(p, Addr{"d", "echo"}, Addr{"s", "echo"}, ResumeConfig{})
	r.mu.Lock()
	r.ended, r.cleanClose, r.finQueued, r.ackNow = true, true, true, true
	close(r.quit)
	r.mu.Unlock()
	r.wg.Add(1)
	go r.writeLoop()
	waitEnded(t, r)
	if w := p.written(); len(w) != 0 {
		t.Fatalf("wrote %d frames after the end", len(w))
	}
	if !p.closed {
		t.Fatal("the path was not closed")
	}
}

// TestResumableWriteDoesNotBlockOnUnreadPath: once sent data is
// unacknowledged, the path may be out of flow-control credit (a hop or the
// other end not reading), so neither Write nor Close writes on it from the
// caller's goroutine: both return while the path's Write is stuck.
func TestResumableWriteDoesNotBlockOnUnreadPath(t *testing.T) {
	p := newRecPath(nil, 0)
	src := earlySource(t, p, 0)
	if _, err := src.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.written()) >= 1 })
	p.mu.Lock()
	p.hold = true // the path's stream is out of credit from now on
	p.mu.Unlock()
	done := make(chan error, 2)
	go func() {
		_, err := src.Write([]byte("b"))
		done <- err
		done <- src.Close()
	}()
	for _, op := range []string{"Write", "Close"} {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s waited for a path that takes no more bytes", op)
		}
	}
}

// TestResumableStoppedPathFailsWithoutVerdict: a hop that stops reading
// one direction gracefully (as when the other end closed or refused) and
// then sends nothing, neither a refusal nor the end of stream, does not
// leave the circuit's writes queued for good: the path fails within
// stopDecideTimeout and the circuit ends with an error.
func TestResumableStoppedPathFailsWithoutVerdict(t *testing.T) {
	p := newRecPath(nil, 0)
	src := earlySource(t, p, time.Second)
	if _, err := src.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.written()) >= 1 })
	p.mu.Lock()
	p.werr = &links.StreamResetError{Remote: true, Code: CloseNormal}
	p.mu.Unlock()
	if _, err := src.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := src.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read succeeded on a circuit whose path was stopped")
		}
	case <-time.After(4 * stopDecideTimeout):
		t.Fatal("the circuit still waits for a verdict on its stopped path")
	}
}

// An early resumable source starts its goroutines only at its first call
// (after the first flight left): one that is reset, aborted or closed
// before it ever wrote still ends, and calls OnEnd, so that its owner
// forgets it.
func TestResumableEarlySourceEndsUnused(t *testing.T) {
	for _, c := range []struct {
		name   string
		end    func(*Resumable)
		budget ResumeBudget
	}{
		{"Reset", func(r *Resumable) { r.Reset(CloseCancelled) }, nil},
		{"Abort", func(r *Resumable) { r.Abort(CloseCancelled, errors.New("aborted")) }, nil},
		// Nothing acknowledges the fin: the circuit ends when its resume
		// timeout runs out.
		{"Close", func(r *Resumable) { _ = r.Close() }, nil},
		// The first Write is refused by the buffer budget, and the
		// application drops the circuit without another call.
		{"WriteOverBudget", func(r *Resumable) {
			if _, err := r.Write(make([]byte, 4<<10)); !errors.Is(err, ErrBufferBudget) {
				t.Errorf("Write: %v, want ErrBufferBudget", err)
			}
		}, &countBudget{limit: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newRecPath(nil, 0)
			ended := make(chan struct{})
			src, err := NewResumableSource(p, Addr{"s", "x"}, Addr{"d", "x"}, ResumeConfig{
				Early: true, Redial: noRedial, Timeout: 50 * time.Millisecond,
				OnEnd: func() { close(ended) }, Budget: c.budget,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			c.end(src)
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatal("OnEnd was not called")
			}
			waitEnded(t, src)
		})
	}
}
