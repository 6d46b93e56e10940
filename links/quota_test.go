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
	cpuquota.Under(t, 20*time.Millisecond, 100*time.Millisecond)
	a, b, fc, la := faultyPair(t, nil)
	defer echo(acceptedLink(t, b, "a"))()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for x := 0; !stop.Load(); x++ {
		}
	})
	defer wg.Wait()
	defer stop.Store(true)
	const hold = 10 * time.Second
	began := time.Now()
	rounds := 0
	for time.Since(began) < hold && la.Err() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		err := roundTrip(ctx, la, 1, 16<<10)
		cancel()
		if err != nil {
			t.Fatalf("round trip %d over the link, %v into the quota: %v", rounds, time.Since(began).Round(time.Millisecond), err)
		}
		rounds++
	}
	if err := la.Err(); err != nil {
		t.Fatalf("live link declared dead %v into a quota of 20 ms per 100 ms, after %d round trips: %v",
			time.Since(began).Round(time.Millisecond), rounds, err)
	}
	t.Logf("link up %v into the quota, %d round trips of 16 KiB; the detector allows %v", hold, rounds, allowance(la))
	killed := time.Now()
	_ = fc.Close()
	a.rec.waitEvent(t, "down", detectorCap*DefaultProbeMisses*DefaultProbeInterval+patience)
	t.Logf("silent peer found dead %v after it stopped: %v", time.Since(killed).Round(time.Millisecond), la.Err())
}
