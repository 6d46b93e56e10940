package circuit

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// A caller whose Write ran into its deadline, the destination reading
// nothing, closes the circuit: what it sent stops short of what it meant
// to send. Close resets the circuit (CloseCancelled): the relay's splice
// ends at once, and the destination's Read fails with the caller's reset
// (an unsealed one after about half of the 1 MiB the Write took, a sealed
// one at once). Before, Close sent FIN and stop-sending with code 0 (a
// sealed caller after waiting 1 s to send its end record, in vain): the
// splice stayed blocked writing the caller's bytes to the destination
// until its Stall bound (a minute here); the destination, reading, got
// all of an unsealed circuit's 1 MiB and a clean io.EOF, as if that were
// all, and of a sealed one 0.94 MiB and ErrIntegrity.
func TestCloseAfterWriteDeadlineResets(t *testing.T) {
	for _, sealed := range []bool{false, true} {
		name := "unsealed"
		if sealed {
			name = "sealed"
		}
		t.Run(name, func(t *testing.T) {
			p := newPath(t, 1, nil)
			p.bounds = &SpliceBounds{Stall: time.Minute}
			var c *circuit
			if sealed {
				k := newSealKeys(t)
				var err error
				if c, err = p.connectWith(basicOpen(), k.accept, k.dial(basicOpen(), false, false, false)); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(c.stop)
			} else {
				c = mustConnect(t, p, basicOpen(), false)
			}
			c.caller.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			// Far more than the flow-control windows hold.
			if _, err := c.caller.Write(make([]byte, 32<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write: %v, want its deadline", err)
			}
			if err := c.caller.Close(); err != nil {
				t.Fatal(err)
			}
			wantCutReset(t, c)
		})
	}
}

// A Close from another goroutine interrupts a Write blocked on a
// destination that reads nothing (a proxy cancelling, context.AfterFunc):
// the data stops short as after a deadline, and Close resets the circuit.
// Before, an unsealed one sent FIN: the destination read 0.93 MiB of the
// 32 MiB and a clean io.EOF.
func TestCloseInterruptingWriteResets(t *testing.T) {
	p := newPath(t, 1, nil)
	p.bounds = &SpliceBounds{Stall: time.Minute}
	c := mustConnect(t, p, basicOpen(), false)
	werr := make(chan error, 1)
	go func() {
		_, err := c.caller.Write(make([]byte, 32<<20))
		werr <- err
	}()
	// The Write is under way once it holds the writer's lock, and blocked
	// once the windows are full; Close comes in the middle either way.
	for c.caller.writeMu.TryLock() {
		c.caller.writeMu.Unlock()
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if err := c.caller.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err == nil {
		t.Fatal("the interrupted Write of 32 MiB succeeded")
	}
	wantCutReset(t, c)
}

// wantCutReset waits for the relay's splice of c to end and the
// destination's Read to fail with the caller's reset (cancelled).
func wantCutReset(t *testing.T, c *circuit) {
	t.Helper()
	select {
	case <-c.splicers[0].Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the relay's splice still runs 10 s after the caller closed")
	}
	_, err := io.Copy(io.Discard, c.dest)
	var re *ResetError
	if !errors.As(err, &re) || !re.Remote || re.Code != CloseCode(CloseCancelled) {
		t.Fatalf("the destination's Read: %v, want the caller's reset (cancelled)", err)
	}
}

// A Write that completes after one cut by its deadline (the caller wrote
// the rest) leaves the data whole: Close ends the circuit cleanly, and the
// destination reads all of it, then io.EOF.
func TestCloseAfterCompletedWriteEndsCleanly(t *testing.T) {
	c := mustConnect(t, newPath(t, 1, nil), basicOpen(), false)
	data := make([]byte, 32<<20)
	c.caller.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.caller.Write(data)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v, want its deadline", err)
	}
	got := make(chan int64, 1)
	go func() {
		k, err := io.Copy(io.Discard, c.dest)
		if err != nil {
			t.Errorf("the destination's Read: %v, want io.EOF", err)
		}
		got <- k
	}()
	c.caller.SetWriteDeadline(time.Time{})
	if _, err := c.caller.Write(data[n:]); err != nil {
		t.Fatal(err)
	}
	if err := c.caller.Close(); err != nil {
		t.Fatal(err)
	}
	if k := <-got; k != int64(len(data)) {
		t.Fatalf("the destination read %d bytes, want %d", k, len(data))
	}
}

// A resumable circuit's Close after a Write that ran into its deadline
// (its window full, the other end reading nothing) resets it too: the
// other end's Read fails with the reset. Before, Close delivered the
// 64 KiB the Write took and the other end read them, then io.EOF.
func TestResumableCloseAfterWriteDeadlineResets(t *testing.T) {
	g := newResumeRig(t)
	_, src, dst := g.pair(ResumeConfig{Window: 64 << 10}, ResumeConfig{Window: 64 << 10})
	src.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := src.Write(make([]byte, 1<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v, want its deadline", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, dst)
	var re *ResetError
	if !errors.As(err, &re) || !re.Remote || re.Code != CloseCode(CloseCancelled) {
		t.Fatalf("the other end's Read: %v, want the reset (cancelled)", err)
	}
}
