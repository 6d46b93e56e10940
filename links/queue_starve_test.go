package links

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLinkSurvivesALongRunQueue links two transports of one process whose
// run queue is long: goroutines that compute without pause, as the other
// nodes of a test or a busy application do. The probe loop's timer wakes
// it promptly, while the peer's frames wait behind every runnable
// goroutine on their way in: the link must not be declared dead for that.
// Once the process is quiet again, a peer that goes silent is still found
// dead.
func TestLinkSurvivesALongRunQueue(t *testing.T) {
	a, _, fc, la := faultyPair(t, nil)
	var stop atomic.Bool
	var wg sync.WaitGroup
	spinners := 20 * runtime.GOMAXPROCS(0)
	for range spinners {
		wg.Go(func() {
			for x := 0; !stop.Load(); x++ {
			}
		})
	}
	const busy = 6 * time.Second
	began := time.Now()
	for time.Since(began) < busy && la.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if err := la.Err(); err != nil {
		t.Fatalf("live link declared dead %v into a run queue of %d busy goroutines: %v", time.Since(began).Round(time.Millisecond), spinners, err)
	}
	_ = fc.Close()
	a.rec.waitEvent(t, "down", patience)
	t.Logf("silent peer found dead once the process was quiet: %v", la.Err())
}
