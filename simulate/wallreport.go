package simulate

import (
	"io"
	"sync"
	"time"
)

// wallReportEvery is how often, in wall time, a virtual-time run with
// progress lines says how far a wait converged has come. Its own
// progress lines come every 100 ms of virtual time, but a cold start of
// thousands of nodes can spend many minutes at one instant of virtual
// time, handing routing messages around, with no line at all.
const wallReportEvery = time.Minute

// wallReporter calls the report of the step running now, if it has one,
// from a goroutine outside the synctest bubble, which sees the real
// clock: RunVirtual starts it. The report reads only what may be read
// from outside the bubble (locks and counters, no channel or timer of
// the bubble).
type wallReporter struct {
	mu     sync.Mutex
	report func() // nil between steps that report
}

// set makes f the report of the step now running (nil: none).
func (w *wallReporter) set(f func()) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report = f
}

// fire calls the current report, if any.
func (w *wallReporter) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.report != nil {
		w.report()
	}
}

// run fires every interval of wall time until done is closed.
func (w *wallReporter) run(interval time.Duration, done <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			w.fire()
		}
	}
}

// lockedWriter writes to w one Write at a time: the progress lines of a
// virtual-time run come from inside the bubble and from its wallReporter.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
