package circuit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// countBudget is a ResumeBudget that grants up to limit bytes (none: no
// limit) and counts what is granted.
type countBudget struct {
	mu     sync.Mutex
	limit  int
	held   int
	peak   int
	grants int
}

func (b *countBudget) Grow(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.held+n > b.limit {
		return false
	}
	b.grantLocked(n)
	return true
}

func (b *countBudget) grantLocked(n int) {
	b.held += n
	b.peak = max(b.peak, b.held)
	b.grants++
}

func (b *countBudget) Shrink(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.held {
		panic("shrink beyond what was granted")
	}
	b.held -= n
}

func (b *countBudget) state() (held, peak, grants int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held, b.peak, b.grants
}

// The buffers of both ends are charged while data waits in them, and
// everything goes back on every way a circuit ends: a clean close, a
// Reset, the resume timeout while waiting for a path, an Abort.
func TestResumeBudgetBalanced(t *testing.T) {
	ends := map[string]func(t *testing.T, g *resumeRig, p *testPath, src, dst *Resumable){
		"close": func(t *testing.T, g *resumeRig, p *testPath, src, dst *Resumable) {
			src.CloseWrite()
			if _, err := io.ReadAll(dst); err != nil {
				t.Fatal(err)
			}
			dst.Close()
			src.SetReadDeadline(time.Now().Add(20 * time.Second))
			io.Copy(io.Discard, src)
			src.Close()
		},
		"reset": func(t *testing.T, g *resumeRig, p *testPath, src, dst *Resumable) {
			dst.Reset(CloseCancelled)
		},
		"resume timeout": func(t *testing.T, g *resumeRig, p *testPath, src, dst *Resumable) {
			crash(p) // the source's Redial never finds a path
			dst.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, err := dst.Read(make([]byte, 64<<10)); err != nil {
					if !errors.Is(err, ErrResumeTimeout) {
						t.Fatalf("destination: %v, want ErrResumeTimeout", err)
					}
					return
				}
			}
		},
		"abort": func(t *testing.T, g *resumeRig, p *testPath, src, dst *Resumable) {
			dst.Abort(CloseStalled, ErrBufferBudget)
			src.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, err := io.ReadAll(src)
			if !errors.Is(err, ErrStalled) {
				t.Fatalf("source after the destination's Abort: %v, want ErrStalled", err)
			}
		},
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			g := newResumeRig(t)
			sb, db := &countBudget{}, &countBudget{}
			scfg := ResumeConfig{Budget: sb, Timeout: 500 * time.Millisecond, Redial: func(ctx context.Context) (Path, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}}
			p, src, dst := g.pair(scfg, ResumeConfig{Budget: db, Timeout: 500 * time.Millisecond})
			// A byte each way, read: the receive queues are empty, so
			// the first record of what follows is held as it came.
			for _, c := range [][2]*Resumable{{src, dst}, {dst, src}} {
				if _, err := c[0].Write([]byte{1}); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c[1], make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
			}
			// 256 KiB each way, unread: both ends hold it.
			data := make([]byte, 256<<10)
			if _, err := src.Write(data); err != nil {
				t.Fatal(err)
			}
			if _, err := dst.Write(data); err != nil {
				t.Fatal(err)
			}
			waitRegistered(t, g.table, 1)
			waitFor(t, func() bool {
				h, _, _ := db.state()
				return h >= 2*len(data) // its receive queue and its retransmit buffer
			})
			for side, r := range map[string]*Resumable{"source": src, "destination": dst} {
				waitFor(t, func() bool { return holding(r) })
				r.mu.Lock()
				charged, rq, sbuf, held, bufs := r.charged, cap(r.rq.buf), cap(r.sbuf.buf), len(r.held), r.heldBufs
				r.mu.Unlock()
				if want := rq + sbuf + bufs; charged != want {
					t.Errorf("%s charged with %d bytes, want %d: its receive queue, retransmit buffer and %d held records", side, charged, want, held)
				}
			}
			end(t, g, p, src, dst)
			src.Reset(CloseCancelled)
			dst.Reset(CloseCancelled)
			src.Wait()
			dst.Wait()
			for side, b := range map[string]*countBudget{"source": sb, "destination": db} {
				if held, peak, _ := b.state(); held != 0 {
					t.Errorf("%s still charged with %d bytes after the circuit ended (peak %d)", side, held, peak)
				}
			}
		})
	}
}

// holding reports whether r keeps a received record it was not read from
// yet.
func holding(r *Resumable) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.held) > 0
}

// A destination whose budget refuses its buffers more memory ends the
// circuit with ErrBufferBudget; the source sees it reset for the budget
// (CloseOverBudget), not resumed; what was granted goes back.
func TestResumeBudgetRefusal(t *testing.T) {
	g := newResumeRig(t)
	db := &countBudget{limit: 128 << 10}
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{Budget: db})
	werr := make(chan error, 1)
	go func() {
		src.SetWriteDeadline(time.Now().Add(20 * time.Second))
		_, err := src.Write(make([]byte, 1<<20)) // the destination reads none of it
		werr <- err
	}()
	// Nothing is read: the circuit ends once its buffers ask for more.
	ended := make(chan struct{})
	go func() {
		dst.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the destination's circuit did not end when its budget refused")
	}
	dst.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.ReadAll(dst)
	if !errors.Is(err, ErrBufferBudget) {
		t.Fatalf("destination: %v, want ErrBufferBudget", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("source Write (within its window): %v", err)
	}
	src.SetReadDeadline(time.Now().Add(20 * time.Second))
	var re *ResetError
	if _, err := src.Read(make([]byte, 1)); !errors.Is(err, ErrBufferBudget) || !errors.As(err, &re) || re.Code.Reason() != CloseOverBudget {
		t.Fatalf("source Read: %v, want ErrBufferBudget (CloseOverBudget)", err)
	}
	if held, peak, _ := db.state(); held != 0 || peak > db.limit {
		t.Errorf("budget holds %d bytes after the circuit ended, peak %d (limit %d)", held, peak, db.limit)
	}
	if n := g.redials.Load(); n != 0 {
		t.Errorf("the source resumed a circuit its destination ended for its budget (%d redials)", n)
	}
}

// A lone circuit whose budget is MaxResumeCharge (node.MinResumeBuffer) is
// never reset by it: both ends writing a window each and reading nothing,
// until all of it is received, keep the circuit's receive queue, its
// retransmit buffer and its held records within it.
func TestResumeLoneCircuitWithinMaxCharge(t *testing.T) {
	g := newResumeRig(t)
	b := &countBudget{limit: MaxResumeCharge}
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{Budget: b})
	defer func() { src.Reset(CloseCancelled); dst.Reset(CloseCancelled) }()
	data := make([]byte, DefaultResumeWindow)
	go src.Write(data)
	go dst.Write(data)
	waitFor(t, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		if dst.ended {
			_, peak, _ := b.state()
			t.Fatalf("a lone circuit ended by a budget of MaxResumeCharge (%d; peak %d): %v", MaxResumeCharge, peak, dst.err)
		}
		return dst.recv == int64(len(data))
	})
}

// sendBudget is a countBudget that is a SendBudget: it refuses the
// retransmit buffer growth beyond limit, the floor aside, counts the
// refusals, and whether the circuit waits for room it refused.
type sendBudget struct {
	countBudget
	refused int
	waiting bool
}

func (b *sendBudget) GrowSend(n int, floor bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !floor && b.limit > 0 && b.held+n > b.limit {
		b.refused++
		b.waiting = true
		return false
	}
	b.waiting = false
	b.grantLocked(n)
	return true
}

func (b *sendBudget) StopWaiting() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiting = false
}

func (b *sendBudget) waits() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting
}

func (b *sendBudget) refusals() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refused
}

// A Write whose retransmit buffer a SendBudget has no room for waits,
// the circuit intact: until its deadline (a timeout), the circuit's
// Close (net.ErrClosed), or SendRoom once the budget has room. A Write
// that returns without the room tells the budget it no longer waits.
func TestResumeSendBudgetHoldsWritesBack(t *testing.T) {
	g := newResumeRig(t)
	db := &sendBudget{countBudget: countBudget{limit: 2 * MinSendBuffer}}
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{Budget: db})
	defer src.Reset(CloseCancelled)
	data := make([]byte, 1<<20) // within the window: only the budget holds it back

	dst.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := dst.Write(data)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write past the budget: %d bytes, %v; want a timeout at the deadline", n, err)
	}
	if n == 0 || n > 2*MinSendBuffer || db.refusals() == 0 {
		t.Fatalf("Write queued %d bytes, refused %d times; want some, within the budget of %d", n, db.refusals(), 2*MinSendBuffer)
	}
	if db.waits() {
		t.Fatal("the Write returned at its deadline, and the budget still keeps the circuit's turn")
	}

	// SendRoom wakes a waiting Write once the budget has room.
	dst.SetWriteDeadline(time.Time{})
	werr := make(chan error, 1)
	go func() {
		_, err := dst.Write(data[:256<<10])
		werr <- err
	}()
	refused := db.refusals()
	waitFor(t, func() bool { return db.refusals() > refused })
	db.mu.Lock()
	db.limit = 1 << 20
	db.mu.Unlock()
	dst.SendRoom()
	select {
	case err := <-werr:
		if err != nil {
			t.Fatalf("Write woken by SendRoom: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SendRoom did not wake the Write waiting for the budget")
	}

	// Close ends a waiting Write.
	go func() {
		_, err := dst.Write(data)
		werr <- err
	}()
	refused = db.refusals()
	waitFor(t, func() bool { return db.refusals() > refused })
	dst.Close()
	select {
	case err := <-werr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write waiting for the budget at Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the Write waiting for the budget")
	}
	if db.waits() {
		t.Error("the Write ended by Close, and the budget still keeps the circuit's turn")
	}
	if _, peak, _ := db.state(); peak > 1<<20 {
		t.Errorf("budget peak %d, over its limit", peak)
	}
}
