//go:build !race

package circuit

import (
	"io"
	"testing"
)

// TestResumableEchoAddsNoAllocs checks that a small message and its
// answer over a sealed circuit allocate nothing at either end (fewer than
// one allocation per echo: AllocsPerRun rounds down), and that the
// resumable layer adds nothing to that: its rings hand their buffers back
// to the pools in the headers they came in, and the delayed
// acknowledgement each end arms for the message it read reuses one timer.
// (Without the race detector, whose pools drop a share of what is put.)
func TestResumableEchoAddsNoAllocs(t *testing.T) {
	perEcho := func(resumable bool) float64 {
		c, d, stop := socketEnds(t, resumable)
		defer stop(nil)
		go echoBytes(d)
		buf := []byte{'x'}
		echo := func() {
			if _, err := c.Write(buf); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
		}
		for range 100 { // warm: rings and timers made, pools filled
			echo()
		}
		return testing.AllocsPerRun(1000, echo)
	}
	sealed, resumable := perEcho(false), perEcho(true)
	t.Logf("allocations per echo: sealed %.2f, resumable %.2f", sealed, resumable)
	if sealed >= 1 {
		t.Errorf("a sealed circuit allocates %.2f times per echo, want none", sealed)
	}
	if resumable-sealed >= 1 {
		t.Errorf("the resumable layer adds %.2f allocations per echo, want none", resumable-sealed)
	}
}
