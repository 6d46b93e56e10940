package links

import (
	"sync"
	"time"
)

// Adaptive failure detection (docs/DESIGN.md, "Liveness under load").
//
// The detector learns how irregularly signs of life arrive from the peer:
// an estimate of the mean gap between control frames (frames that
// arrive in one read of the control stream count as one) and a
// peak-holding deviation that jumps to any larger gap at once and decays
// slowly (1/512 per frame: its memory is about a minute at the usual ten
// frames a second). The peer is declared dead after
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

// seed starts the estimate from the link's handshake, which took hs: the
// first frames of the peer come after it finished its side of the
// handshake and started its loops, so the first of them may come as late
// as the handshake was slow. On an idle machine a handshake takes
// milliseconds and the floor decides as before; under CPU starvation the
// handshake's round trips took as long as the first probe's will, which a
// floor that knows nothing of the load would count as the peer's silence.
// Frames then refine the estimate as usual; the seeded deviation decays
// like any other, by 1/detectorDevDecay a frame, so it outlasts the first
// frames: after a 1.3 s handshake the allowance stays above twice the
// floor for about a minute of frames at 10 a second.
func (d *gapDetector) seed(hs time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if hs > 0 && d.mean == 0 {
		d.mean, d.dev = hs, hs
	}
}

// allowance is how long the peer may stay silent before it is declared
// dead, given the floor.
func (d *gapDetector) allowance(floor time.Duration) time.Duration {
	d.mu.Lock()
	a := d.mean + detectorDevMult*d.dev
	d.mu.Unlock()
	return min(max(a, floor), detectorCap*floor)
}
