package links

import (
	"sync"
	"testing"
	"time"
)

// lateTicks makes the probe loops started until the test ends tick every
// interval, each tick delivered lag after it was due and carrying its due
// time, as the timers of a process under a CPU quota fire: the process is
// stopped once it used its share of a period, and runs its timers first
// when the next period begins. Ticks stay one interval apart.
func lateTicks(t *testing.T, lag time.Duration) {
	f := func(d time.Duration) (<-chan time.Time, func()) {
		c := make(chan time.Time, 1)
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			due := time.Now().Add(d)
			for {
				select {
				case <-done:
					return
				case <-time.After(time.Until(due.Add(lag))):
				}
				select {
				case c <- due:
				default: // as a Ticker drops ticks its reader missed
				}
				due = due.Add(d)
			}
		})
		return c, func() { close(done); wg.Wait() }
	}
	testProbeTicks.Store(&f)
	t.Cleanup(func() { testProbeTicks.Store(nil) })
}

// TestLinkSurvivesAProcessStoppedEachPeriod: a and b run in one process
// whose timers fire 100 ms late, each tick as late as the last, as under
// a CPU quota of a fraction of each 100 ms period; the peer's frames,
// which cross several goroutines at each end, each of which may wait for
// the next period, arrive 900 ms late from some moment on (b's packets
// are delayed by that much). The probe loop's yield takes microseconds
// there (its timer runs first when the process runs again), and its ticks
// stay an interval apart, so neither its run-queue wait nor its lateness
// counted the stops: a's detector kept its floor, 800 ms, and declared the
// live link dead at the first tick past it. Now a tick's delay from when
// it was due counts as this process's delay, which the peer's frames may
// have met at each goroutine they crossed. A peer that goes silent is
// still found dead, within the detector's cap plus the time the delayed
// packets already sent take to arrive.
func TestLinkSurvivesAProcessStoppedEachPeriod(t *testing.T) {
	const lag, delay = 100 * time.Millisecond, 900 * time.Millisecond
	lateTicks(t, lag)
	a, _, fc, la := faultyPair(t, nil)
	time.Sleep(time.Second) // healthy probes
	// On an idle machine the floor, 800 ms; more when the handshake or
	// the first frames were slow.
	t.Logf("the detector allows %v before the delay", allowance(la))
	fc.setDelay(delay)
	const hold = 5 * time.Second
	began := time.Now()
	for time.Since(began) < hold && la.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	if err := la.Err(); err != nil {
		t.Fatalf("live link declared dead %v after b's frames began to arrive %v late, with ticks %v late: %v",
			time.Since(began).Round(time.Millisecond), delay, lag, err)
	}
	t.Logf("link up %v after the delay began; the detector allows %v", hold, allowance(la))
	killed := time.Now()
	_ = fc.Close()
	a.rec.waitEvent(t, "down", delay+detectorCap*DefaultProbeMisses*DefaultProbeInterval+patience)
	t.Logf("silent peer found dead %v after it stopped: %v", time.Since(killed).Round(time.Millisecond), la.Err())
}
