package links

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/cpuquota"
)

// TestLinkSurvivesACPUQuota runs a link under a real CPU quota: this
// process may use 20 ms of CPU per 100 ms period (a tenth of a 2-core
// machine), and a goroutine that computes without pause uses it up, so
// the process is stopped for the rest of each period, while a stream
// carries data both ways over the link. a's link to b must stay up for
// 10 s and carry the stream's bytes, and a b that goes silent is still
// found dead. Needs root and the cgroup v1 cpu controller; it says so and
// skips without them.
func TestLinkSurvivesACPUQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 10 s under the quota, then a dead peer's detection (make test-long)")
	}
	a, fc, la := linkUnderQuota(t, 20*time.Millisecond, 100*time.Millisecond, 10*time.Second, 16<<10)
	killed := time.Now()
	_ = fc.Close()
	a.rec.waitEvent(t, "down", detectorCap*DefaultProbeMisses*DefaultProbeInterval+patience)
	t.Logf("silent peer found dead %v after it stopped: %v", time.Since(killed).Round(time.Millisecond), la.Err())
}

// linkUnderQuota runs a link between two transports of this process in a
// cgroup of quota CPU per period, beside a goroutine that computes
// without pause (stopped when the test ends), and makes round trips of
// size bytes over it for hold: the link must stay up. It returns a, its
// link la, and the fault conn of b, whose Close silences b.
func linkUnderQuota(t *testing.T, quota, period, hold time.Duration, size int) (a *node, fc *faultConn, la Link) {
	t.Helper()
	cpuquota.Under(t, quota, period)
	a, b, fc, la := faultyPair(t, nil)
	t.Cleanup(echo(acceptedLink(t, b, "a")))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for x := 0; !stop.Load(); x++ {
		}
	})
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { stop.Store(true) })
	began := time.Now()
	rounds := 0
	for time.Since(began) < hold && la.Err() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		err := roundTrip(ctx, la, 1, size)
		cancel()
		if err != nil {
			t.Fatalf("round trip %d over the link, %v into the quota: %v", rounds, time.Since(began).Round(time.Millisecond), err)
		}
		rounds++
	}
	if err := la.Err(); err != nil {
		t.Fatalf("live link declared dead %v into a quota of %v per %v, after %d round trips: %v",
			time.Since(began).Round(time.Millisecond), quota, period, rounds, err)
	}
	t.Logf("link up %v into the quota, %d round trips of %d bytes; the detector allows %v", hold, rounds, size, allowance(la))
	return a, fc, la
}
