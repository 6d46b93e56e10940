package circuit

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"
)

// resendRecorder is a ResendBudget that grants all memory and records
// what resumes had the circuit send again.
type resendRecorder struct {
	mu      sync.Mutex
	charges []int64
}

func (b *resendRecorder) Grow(int) bool { return true }
func (b *resendRecorder) Shrink(int)    {}
func (b *resendRecorder) Resend(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.charges = append(b.charges, n)
}

func (b *resendRecorder) taken() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int64(nil), b.charges...)
}

// A destination whose Budget is a ResendBudget charges it, and counts in
// its table, exactly what each resume has it send again: what it sent
// beyond the offset the resume names. A resume that names all it sent
// charges nothing.
func TestResumeResendChargedToBudget(t *testing.T) {
	const window = 64 << 10
	g := newResumeRig(t)
	budget := &resendRecorder{}
	_, id, sentAll := g.sentWindow(t, ResumeConfig{Window: window, Budget: budget})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resume := func(off int64) {
		t.Helper()
		_, c, err := g.connect(ctx, FlagResume)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.caller.Write(binary.BigEndian.AppendUint64(append([]byte{frameResume}, id[:]...), uint64(off))); err != nil {
			t.Fatal(err)
		}
		c.caller.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c.caller, make([]byte, 9)); err != nil {
			t.Fatalf("resume from %d: %v", off, err)
		}
		if err := <-g.resumeErrs; err != nil {
			t.Fatalf("resume from %d: destination's Resume: %v", off, err)
		}
		waitFor(t, sentAll)
	}
	resume(0)
	resume(window / 4)
	resume(window)
	want := []int64{window, window - window/4}
	got := budget.taken()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("the budget was charged %v for resumes from 0, %d and %d of %d positions sent, want %v", got, window/4, window, window, want)
	}
	if n := g.table.Resent(); n != want[0]+want[1] {
		t.Errorf("the table counts %d positions sent again, want %d", n, want[0]+want[1])
	}
}
