// Package ratelog logs repeated conditions at most once per key per period,
// reporting how many lines it suppressed in between.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// Log rate-limits log lines by key. The zero value is not usable; see New.
type Log struct {
	log    *slog.Logger
	period time.Duration
	max    int

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	last       time.Time
	suppressed int
}

// New returns a Log writing to log at most one line per key per period,
// tracking at most max keys (all are forgotten when the bound is hit).
func New(log *slog.Logger, period time.Duration, max int) *Log {
	return &Log{log: log, period: period, max: max, keys: make(map[string]*entry)}
}

// Warn logs msg at WARN unless a line with the same key was logged less
// than a period ago; a logged line carries "suppressed", the number of
// lines dropped for its key since the previous one, when non-zero. It
// reports whether it logged.
func (r *Log) Warn(key, msg string, args ...any) bool {
	now := time.Now()
	r.mu.Lock()
	e := r.keys[key]
	if e != nil && now.Sub(e.last) < r.period {
		e.suppressed++
		r.mu.Unlock()
		return false
	}
	if e == nil {
		if len(r.keys) >= r.max {
			clear(r.keys)
		}
		e = &entry{}
		r.keys[key] = e
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	r.log.Warn(msg, args...)
	return true
}
