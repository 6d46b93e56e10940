package links

import (
	"testing"
	"time"
)

// TestDeadPeerFoundUnderLongPeriodQuota runs a link in a process allowed
// 100 ms of CPU per 1 s period (a tenth of a core), beside a goroutine
// that computes without pause, so that the process is stopped for about
// 900 ms of every second. The live link stays up through 5 s of round
// trips. A peer that then goes silent is found dead within QUIC's idle
// timeout, a period and a second: every probe tick after such a stop (more
// than three intervals late) gives the peer a fresh window, so the
// failure detector does not declare it lost, and the idle timeout does
// (10.0 to 11 s in five runs, where a process without the quota found
// it in 1.6 s). DESIGN.md ("Liveness under load") says so. Needs root and
// the cgroup v1 cpu controller; it says so and skips without them.
func TestDeadPeerFoundUnderLongPeriodQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 5 s under the quota, then up to 12 s waiting for the dead peer's detection")
	}
	a, fc, la := linkUnderQuota(t, 100*time.Millisecond, time.Second, 5*time.Second, 1<<10)
	killed := time.Now()
	_ = fc.Close()
	limit := QUICConfig{}.idleTimeout() + 2*time.Second
	a.rec.waitEvent(t, "down", limit+patience)
	took := time.Since(killed)
	t.Logf("silent peer found dead %v after it stopped: %v", took.Round(time.Millisecond), la.Err())
	if took > limit {
		t.Fatalf("a dead peer under a quota of 100 ms per 1 s was declared lost after %v, want within %v (QUIC's idle timeout, a period and a second)",
			took.Round(time.Millisecond), limit)
	}
}
