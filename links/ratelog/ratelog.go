// Package ratelog logs repeated conditions at most once per key per period,
// reporting how many lines it suppressed in between.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log rate-limits log lines by key. The zero value is not usable; see New.
type Log struct {
	log    *slog.Logger
	period time.Duration
	max    int

	// total, when above zero, bounds the lines of all keys together
	// to total a period (see Total).
	total   int
	overMsg string

	mu   sync.Mutex
	keys map[string]*entry
	// The current period of the total bound: when it began, the lines
	// written in it, whether overMsg was written in it, and the lines
	// held back by the bound not yet reported.
	start   time.Time
	written int
	over    bool
	held    int
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

// Total bounds the lines Warn writes for all keys together to n a
// period, for keys a peer may choose many of (the source prefixes of a
// flood): beyond n, a key's line is held back (a key seen before counts
// it in its next line's "suppressed"), and the first line held back in a
// period has msg written instead, once. The next line written carries
// "held_back", the lines the bound held back since the line before it.
// It returns r.
func (r *Log) Total(n int, msg string) *Log {
	r.total, r.overMsg = n, msg
	return r
}

// Warn logs msg at WARN unless a line with the same key was logged less
// than a period ago; a logged line carries "suppressed", the number of
// lines dropped for its key since the previous one, when non-zero. It
// reports whether it logged.
func (r *Log) Warn(key, msg string, args ...any) bool {
	return r.At(slog.LevelWarn, key, msg, args...)
}

// Debug is Warn at DEBUG. While the logger does not write DEBUG lines it
// returns false at once and counts nothing.
func (r *Log) Debug(key, msg string, args ...any) bool {
	return r.At(slog.LevelDebug, key, msg, args...)
}

// At is Warn at level (Total's note too); below WARN, while the logger
// does not write level, it returns false at once and counts nothing.
func (r *Log) At(level slog.Level, key, msg string, args ...any) bool {
	if level < slog.LevelWarn && !r.log.Enabled(context.Background(), level) {
		return false
	}
	now := time.Now()
	r.mu.Lock()
	e := r.keys[key]
	if e != nil && now.Sub(e.last) < r.period {
		e.suppressed++
		r.mu.Unlock()
		return false
	}
	if r.total > 0 {
		if now.Sub(r.start) >= r.period {
			r.start, r.written, r.over = now, 0, false
		}
		if r.written >= r.total {
			r.held++
			if e != nil {
				e.suppressed++
			}
			note := !r.over
			r.over = true
			r.mu.Unlock()
			if note {
				r.log.Log(context.Background(), level, r.overMsg, "lines", r.total, "period", r.period)
			}
			return false
		}
		r.written++
	}
	if e == nil {
		if len(r.keys) >= r.max {
			clear(r.keys)
		}
		e = &entry{}
		r.keys[key] = e
	}
	n, held := e.suppressed, r.held
	e.last, e.suppressed, r.held = now, 0, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	if held > 0 {
		args = append(args, "held_back", held)
	}
	r.log.Log(context.Background(), level, msg, args...)
	return true
}
