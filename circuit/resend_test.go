package circuit

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// A destination sends again on resumed paths what the source says it did
// not receive, up to ResumeResendSlack windows beyond what the source
// acknowledged: a source that lost a whole window on each of
// MaxResumesWithoutProgress resumed paths in a row (an honest source gives
// up after that many) is still taken, and the resume beyond the slack is
// refused and ends the circuit.
func TestResumeResendBoundedByAcknowledged(t *testing.T) {
	const window = 64 << 10
	g := newResumeRig(t)
	dst, id, sentAll := g.sentWindow(t, ResumeConfig{Window: window})
	// Each resume claims offset 0: the whole window is sent again.
	for i := range ResumeResendSlack {
		if _, err := g.rawResume(t, id); err != nil {
			t.Fatalf("resume %d of %d within the slack: %v", i+1, ResumeResendSlack, err)
		}
		if err := <-g.resumeErrs; err != nil {
			t.Fatalf("resume %d: destination's Resume: %v", i+1, err)
		}
		waitFor(t, sentAll)
	}
	if _, err := g.rawResume(t, id); !refusedForGood(err) {
		t.Errorf("resume beyond %d windows sent again: %v, want a reset by the destination", ResumeResendSlack, err)
	}
	if err := <-g.resumeErrs; !errors.Is(err, ErrResumeRefused) {
		t.Errorf("destination's Resume beyond the slack: %v, want ErrResumeRefused", err)
	}
	dst.Wait()
	if _, err := dst.Write([]byte("x")); !errors.Is(err, ErrResumeRefused) {
		t.Errorf("destination's Write after the refused resume: %v, want ErrResumeRefused", err)
	}
	if n := g.table.Len(); n != 0 {
		t.Errorf("the table still holds %d circuits after the refusal", n)
	}
}

// sentWindow registers a resumable destination of cfg in g's table and
// has it send one window (cfg.Window), and returns it, its circuit's id
// and a test of whether it has sent that window (again, after a resume).
func (g *resumeRig) sentWindow(t *testing.T, cfg ResumeConfig) (*Resumable, [idLen]byte, func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, c, err := g.connect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	dst := NewResumableDest(c.dest, c.dest.LocalAddr(), c.dest.RemoteAddr(), g.table, "s", "echo", cfg)
	t.Cleanup(func() {
		dst.Reset(CloseCancelled)
		dst.Wait()
	})
	var id [idLen]byte
	rand.Read(id[:])
	if _, err := c.caller.Write(append([]byte{frameHello}, id[:]...)); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)
	if _, err := dst.Write(make([]byte, cfg.Window)); err != nil {
		t.Fatal(err)
	}
	sentAll := func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.sent == int64(cfg.Window)
	}
	waitFor(t, sentAll)
	return dst, id, sentAll
}
