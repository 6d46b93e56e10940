package links

import (
	"runtime/metrics"
	"sync"
	"time"
)

// behindShare: the node was behind over a span if at least one in
// behindShare of its goroutines' waits to run (schedLag) in the span
// lasted the slow wait or longer.
const behindShare = 100

// schedLag tells whether this process's own work was behind: how long
// its goroutines waited, runnable, before they ran (the Go scheduler's
// histogram /sched/latencies:seconds, which samples such waits). A peer
// that is slow to answer makes none of them wait; a process starved of
// CPU (a quota, a busy host) or with more work than CPU does.
type schedLag struct {
	mu     sync.Mutex
	sample []metrics.Sample
	slow   float64 // seconds: a wait this long or longer is a slow one
}

// lagMark is the count of waits sampled, and of slow ones, up to a
// moment.
type lagMark struct{ waits, slow uint64 }

func newSchedLag(slow time.Duration) *schedLag {
	return &schedLag{sample: []metrics.Sample{{Name: "/sched/latencies:seconds"}}, slow: slow.Seconds()}
}

// mark is the count of waits up to now (zero if the runtime does not
// sample them: then the node is never behind).
func (l *schedLag) mark() lagMark {
	l.mu.Lock()
	defer l.mu.Unlock()
	metrics.Read(l.sample)
	var m lagMark
	if l.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return m
	}
	h := l.sample[0].Value.Float64Histogram()
	for i, n := range h.Counts {
		m.waits += n
		if h.Buckets[i] >= l.slow { // bucket i holds the waits of Buckets[i] up to Buckets[i+1]
			m.slow += n
		}
	}
	return m
}

// behindSince says whether the node was behind since from: at least one
// in behindShare of the waits sampled since lasted the slow wait or
// longer.
func (l *schedLag) behindSince(from lagMark) bool {
	now := l.mark()
	waits, slow := now.waits-from.waits, now.slow-from.slow
	return slow > 0 && slow*behindShare >= waits
}
