package links

import (
	"sync"
	"time"
)

// Adaptive failure detection (docs/DESIGN.md, "Liveness under load").
//
// The detector learns how irregularly signs of life arrive from the peer:
// an estimate of the mean gap between control frames and a peak-holding
// deviation that jumps to any larger gap at once and decays slowly
// (1/512 per frame: its memory is about a minute at the usual ten frames
// a second). The peer is declared dead after
// max(floor, mean + 4 × deviation) of silence, capped at detectorCap ×
// floor: on a quiet link the floor (ProbeMisses × ProbeInterval) decides,
// so a dead peer is found as fast as before; a peer that has been seen to
// stall (a descheduled process, a CPU-starved host) gets a proportionally
// longer allowance, which shrinks back to the floor after a few minutes
// of regular traffic.
const (
	detectorMeanGain = 8   // mean gap: EWMA with gain 1/8
	detectorDevDecay = 512 // deviation decays by 1/512 per sample
	detectorDevMult  = 4   // allowance = mean + 4 × deviation
	detectorCap      = 8   // allowance at most 8 × the floor
)

// gapDetector estimates the spread of inter-arrival gaps. Safe for
// concurrent use.
type gapDetector struct {
	mu   sync.Mutex
	last time.Time
	mean time.Duration
	dev  time.Duration
}

// observe records a sign of life at t.
func (d *gapDetector) observe(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last.IsZero() || !t.After(d.last) {
		if d.last.IsZero() {
			d.last = t
		}
		return
	}
	gap := t.Sub(d.last)
	d.last = t
	if d.mean == 0 {
		d.mean = gap
		return
	}
	diff := gap - d.mean
	if diff < 0 {
		diff = -diff
	}
	d.mean += (gap - d.mean) / detectorMeanGain
	d.dev -= d.dev / detectorDevDecay
	d.dev = max(d.dev, diff)
}

// allowance is how long the peer may stay silent before it is declared
// dead, given the floor.
func (d *gapDetector) allowance(floor time.Duration) time.Duration {
	d.mu.Lock()
	a := d.mean + detectorDevMult*d.dev
	d.mu.Unlock()
	return min(max(a, floor), detectorCap*floor)
}
