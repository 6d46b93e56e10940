package circuit

import (
	"errors"
	"fmt"
	"time"
)

// Progress detection of resumable circuits (docs/PROTOCOL.md §3.9): a
// path that stays silent while this end waits for something from the
// other end (an acknowledgement of what it sent, or the pong to its ping)
// is deemed broken, as a lost link would be. A relay that keeps the
// circuit's streams open but stops forwarding is found this way; an
// application that does not read is not, since the other end's circuit
// layer answers pings whatever its application does.

// silenceLimitLocked is how long the path may stay silent while this end
// waits: max(ProgressTimeout, 8 × the measured round trip, at most
// maxRTTLimit × ProgressTimeout), doubled for each path failed for no
// progress since a path last had data acknowledged (backoff);
// checkProgress adds the time the path needs to drain what is in flight
// (drainLocked).
func (r *Resumable) silenceLimitLocked() time.Duration {
	pt := r.cfg.ProgressTimeout
	return max(pt, min(8*r.srtt, maxRTTLimit*pt)) << min(r.silentPaths, maxSilenceBackoff)
}

// maxRTTLimit bounds the round trip's share of the silence limit, in
// ProgressTimeouts: the round trip is what a relay makes a pong take,
// and one exchange it held just short of failing the path set the limit
// of every later path without bound. Paths of round trips up to a
// quarter of ProgressTimeout (500 ms by default) get their 8 × in full;
// a slower path is found out by the backoff.
const maxRTTLimit = 2

// maxSilenceBackoff bounds the backoff of the silence limit: after that
// many paths failed for no progress, the limit stops doubling (16 × the
// first, 32 s with the default ProgressTimeout).
//
// A silence that was only a slow path (a CPU-starved machine at either
// end, a congested hop) is found out by the resume: the new path is as
// slow, and without the backoff each resume, which sends everything
// unacknowledged again, would fail the same way until the circuit ran out
// of its resume timeout.
const maxSilenceBackoff = 4

// waitingLocked reports whether the other end owes this end a frame: an
// acknowledgement of what was sent on the path, or a pong.
func (r *Resumable) waitingLocked() bool {
	return r.acked < r.sent || !r.pingAt.IsZero()
}

// armProbeLocked starts the checks when this end starts waiting: the
// silence counts from now. A destination checks only once the hello
// arrived: before, it could not resume anyway, and an early source reads
// nothing until its application writes or reads.
func (r *Resumable) armProbeLocked() {
	if r.probe != nil || r.cfg.ProgressTimeout < 0 || r.ended || !r.source && !r.registered {
		return
	}
	r.heard, r.seenFrames = time.Now(), r.frames.Load()
	r.rateAt, r.rateBase = r.heard, r.credit
	r.scheduleProbeLocked(r.silenceLimitLocked() / 8)
}

// scheduleProbeLocked runs the next check of the current path after d.
func (r *Resumable) scheduleProbeLocked(d time.Duration) {
	gen := r.gen
	r.probe = time.AfterFunc(d, func() { r.checkProgress(gen) })
}

// resetProbeLocked forgets the probe state of a replaced path.
func (r *Resumable) resetProbeLocked() {
	if r.probe != nil {
		r.probe.Stop()
		r.probe = nil
	}
	r.pingDue, r.pongDue, r.pingAt = false, false, time.Time{}
	r.rate, r.rateAt = 0, time.Time{}
}

// minRateSample is the least span of a delivery-rate sample: shorter
// ones measure the burstiness of acknowledgements, not the path.
const minRateSample = 10 * time.Millisecond

// sampleRateLocked notes an acknowledgement of off while this end waits:
// how fast the other end took what was sent (the path's rate, or its
// reader's when slower), smoothed.
func (r *Resumable) sampleRateLocked(off int64) {
	if r.rateAt.IsZero() || off <= r.rateBase {
		return
	}
	now := time.Now()
	span := now.Sub(r.rateAt)
	if span < minRateSample {
		return
	}
	// The path carries data: the backoff of the silence limit counts
	// only paths failed in a row, so a path that is really dead later
	// is found at the base limit again.
	r.silentPaths = 0
	sample := float64(off-r.rateBase) / span.Seconds()
	if r.rate == 0 {
		r.rate = sample
	} else {
		r.rate = (7*r.rate + sample) / 8
	}
	r.rateAt, r.rateBase = now, off
}

// drainLocked is how long the path may take to deliver what this end sent
// and the other end did not acknowledge, at the rate it was seen to take
// data, at most 4 × limit: a ping queues behind that data on the ordered
// path, so its pong cannot come sooner. Before any acknowledgement
// measured the rate, the time that data takes is unknown, and the full
// 4 × limit applies.
func (r *Resumable) drainLocked(limit time.Duration) time.Duration {
	out := min(r.sent, r.written) - r.credit
	switch {
	case out <= 0:
		return 0
	case r.rate <= 0:
		return 4 * limit
	}
	return min(time.Duration(float64(out)/r.rate*float64(time.Second)), 4*limit)
}

// checkProgress runs every eighth of the limit while this end waits: it
// notes whether frames arrived since the last check, asks for a pong
// after a quarter of the limit in silence, and fails the path after all
// of it.
func (r *Resumable) checkProgress(gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen {
		return // the check of a replaced path
	}
	r.probe = nil
	if r.ended || r.cur == nil || !r.waitingLocked() {
		return // armed again by the next send
	}
	now := time.Now()
	if f := r.frames.Load(); f != r.seenFrames {
		r.seenFrames, r.heard = f, now
	}
	limit := r.silenceLimitLocked()
	silent := now.Sub(r.heard)
	// The time the path needs to drain what is in flight ahead of the
	// ping adds to the limit. A source's first path before the
	// destination showed that it holds the circuit (an early open whose
	// handshake is under way) has ResumeConfig.OpenSlack more: its silence
	// may be a slow open, which a relay or the destination ends within
	// its header timeout, but a relay that passes nothing back must not
	// hold it for ever. The resume that follows is refused
	// (ErrResumeRefused) if the destination never took the circuit.
	bound := limit + r.drainLocked(limit)
	if r.source && !r.peerShown {
		bound += r.openSlack()
	}
	if silent >= bound {
		r.silentPaths++
		r.pathFailedLocked(r.gen, fmt.Errorf("%w: nothing arrived from %s for %v", ErrNoProgress, r.remote, silent.Round(time.Millisecond)))
		return
	}
	if silent >= limit/4 && r.pingAt.IsZero() && !r.pingDue {
		r.pingDue = true
		r.broadcast()
	}
	r.scheduleProbeLocked(limit / 8)
}

// openSlack is ResumeConfig.OpenSlack, 5 s (node's default HeaderTimeout)
// when unset.
func (r *Resumable) openSlack() time.Duration {
	if r.cfg.OpenSlack > 0 {
		return r.cfg.OpenSlack
	}
	return 5 * time.Second
}

// appendProbeLocked appends the pong and the ping due, if any.
func (r *Resumable) appendProbeLocked(b []byte) []byte {
	if r.pongDue {
		b = append(b, framePong)
		r.pongDue = false
	}
	if r.pingDue {
		b = append(b, framePing)
		r.pingDue, r.pingAt = false, time.Now()
		r.armProbeLocked()
	}
	return b
}

// probeFrameLocked acts on a ping (answer it) or a pong (measure the
// round trip). A pong with no ping outstanding is ignored.
func (r *Resumable) probeFrameLocked(typ byte) {
	if typ == framePing {
		r.pongDue = true
		r.broadcast()
		return
	}
	if r.pingAt.IsZero() {
		return
	}
	r.peerShown = true
	sample := time.Since(r.pingAt)
	r.pingAt = time.Time{}
	r.pongs.Add(1)
	if r.srtt == 0 {
		r.srtt = sample
	} else {
		r.srtt = (7*r.srtt + sample) / 8
	}
}

// MaxResumesWithoutProgress bounds the resumed paths in a row that may
// fail before anything moved on them (see notePathFailedLocked): the
// source then ends the circuit with ErrResumeLoop instead of resuming
// again.
const MaxResumesWithoutProgress = 8

// notePathFailedLocked (source) accounts for the failure of the current
// path, err, at now, and returns the cause to suspend the circuit with.
//
// A path moved when the other end acknowledged positions on it beyond
// what it had received when the path took over (acked grew) or this end
// received some on it (recv grew): positions crossed it. An
// acknowledgement of what the other end's application read of what it
// had received before (credit) does not count: a path that carries only
// that moved nothing, and a relay could make it last as long as that
// application reads slowly. A resumed
// path that failed without moving counts as a failure with no progress:
// err is wrapped with ErrNoProgress (the next resume avoids the path's
// first hop), the resume waits resumeDelay first, and once
// MaxResumesWithoutProgress did so in a row the circuit ends
// (pathFailedLocked). The resume timeout counts from stuckSince: the
// suspension that followed the last path that moved, or, while this end
// had nothing unacknowledged to send, this one (an idle circuit's path
// may fail long after its last data without having held anything up).
// A relay that resets the circuit whenever it carries data thus holds it
// for at most the resume timeout, or MaxResumesWithoutProgress resumes.
func (r *Resumable) notePathFailedLocked(err error, now time.Time) error {
	moved := r.acked > r.pathAcked || r.recv > r.pathRecv
	if moved || !r.pathResumed {
		r.stuckPaths, r.stuckSince = 0, now
		return err
	}
	r.stuckPaths++
	owed := r.acked < r.written || r.finQueued && r.acked <= r.written
	if !owed {
		r.stuckSince = now
	}
	if errors.Is(err, ErrNoProgress) {
		return err
	}
	return fmt.Errorf("%w: the resumed path failed before anything moved on it: %w", ErrNoProgress, err)
}

// resumeDelay is how long the source waits before it resumes after
// stuck resumed paths in a row failed with nothing moved: none after a
// path that moved, then 50 ms doubling up to 1 s.
func resumeDelay(stuck int) time.Duration {
	if stuck <= 0 {
		return 0
	}
	return min(50*time.Millisecond<<min(stuck-1, 5), time.Second)
}

// ResumeResendSlack bounds what a destination sends again on resumed
// paths: at most this many windows (ResumeConfig.Window) beyond what the
// source acknowledged over the circuit's life (see adopt).
const ResumeResendSlack = MaxResumesWithoutProgress + 2
