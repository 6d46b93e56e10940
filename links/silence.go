package links

import (
	"sync/atomic"
	"time"
)

// silence is the probe loop's account of how long the peer has been
// silent, net of this process's own delays (probeLoop only).
type silence struct {
	interval time.Duration
	// heard is the peer's last sign of life, unix nanos, which the control
	// stream's reader also moves (quicLink.lastHeard).
	heard *atomic.Int64
	gaps  *gapDetector // the peer's gaps, which a stall of ours is not
	// ticked is when the latest tick ran, unix nanos, for the control
	// stream's reader (stalledSince).
	ticked *atomic.Int64
	prev   time.Time // when the previous tick ran
	recv   uint64    // QUIC packets received on the connection at the previous tick
	// excused is the count of packets received at the last stall of this
	// process that gave the peer a fresh window, if one did (excusing): a
	// later stall is excused only if packets came since.
	excused  uint64
	excusing bool
	at       int64         // heard when the silence was last counted
	late     time.Duration // how late our own ticks ran since the peer was heard
	// The longest delay of this process measured since then, -1 before
	// the first: how late a tick ran, from when it was due to after a
	// yield (see probeLoop).
	wait time.Duration
}

func newSilence(interval time.Duration, heard, ticked *atomic.Int64, gaps *gapDetector, now time.Time, recv uint64) *silence {
	ticked.Store(now.UnixNano())
	return &silence{interval: interval, heard: heard, ticked: ticked, gaps: gaps, prev: now, recv: recv, at: heard.Load(), wait: -1}
}

// stalledSince tells the control stream's reader, reading a frame at now,
// whether this process was stopped since the probe loop's latest tick
// (ticked): no tick ran for more than three intervals. The gap before
// such a frame is then this process's stall, not the peer's irregularity
// (silence.tick), whichever of the two ran first after it.
func stalledSince(ticked *atomic.Int64, interval time.Duration, now time.Time) bool {
	t := ticked.Load()
	return t != 0 && now.Sub(time.Unix(0, t)) > 3*interval
}

// tick counts the silence at a probe tick due at due that ran at now
// (after its yield), with recv packets received on the connection so
// far: it returns the silence and the longest delay of this process since
// the peer was heard (-1 if none was measured).
func (s *silence) tick(now, due time.Time, recv uint64) (silent, wait time.Duration) {
	// Packets arriving also prove the peer alive: under heavy load a probe
	// reply may queue behind circuit data. They arrived after the previous
	// tick: count them from then.
	if recv != s.recv {
		s.recv = recv
		heardAt(s.heard, s.prev)
	}
	gap := now.Sub(s.prev)
	s.prev = now
	s.ticked.Store(now.UnixNano())
	// A tick that runs more than three intervals late means this process
	// was not scheduled (CPU starvation, a stopped or paused process): it
	// cannot tell a silent peer from its own stall, so the peer gets a
	// fresh window from now, if packets arrived since the last stall that
	// did so. A live peer's packets that arrived while we were stopped
	// wait in the socket's buffer and are counted once this process runs,
	// soon after the tick that excused the stall, so they are counted by
	// the next stall, however often stalls recur; a peer that sent nothing
	// (a frozen process sends not even the acknowledgements of our probes)
	// does not excuse it. Then the silence counts across the stall and
	// back to the last sign of life or fresh window: none of this
	// process's delays since (the excused stall's included) is taken off
	// it or widens the allowance, since the whole period between the two
	// stalls, in which this process ran, brought no packet. Before, every
	// stall gave a fresh window: under stalls longer than three intervals
	// recurring each second (a CPU quota of 100 ms per 1 s period) the
	// detector never fired, and only QUIC's idle timeout, 10 s, ended the
	// link to a dead peer.
	if gap > 3*s.interval {
		if s.excusing && recv == s.excused {
			s.late, s.wait = 0, -1
			s.at = s.heard.Load()
			return now.Sub(time.Unix(0, s.at)), s.wait
		}
		s.excused, s.excusing = recv, true
		heardAt(s.heard, now)
		// Nor is the gap in the peer's frames that the stall made the
		// peer's irregularity: the frames read after it are timed from
		// now (or from when they were read, if the reader ran first:
		// stalledSince). Learnt, it widened the allowance to about 3 s
		// under stalls recurring each second, and a dead peer took 4 s
		// to be found.
		s.gaps.restart(now)
	}
	// Smaller delays of our own ticks are not the peer's silence either:
	// they are taken off it.
	if h := s.heard.Load(); h != s.at {
		s.at, s.late, s.wait = h, 0, -1
	}
	s.late += max(gap-s.interval, 0)
	s.wait = max(s.wait, now.Sub(due))
	return now.Sub(time.Unix(0, s.at)) - s.late, s.wait
}

// heardAt records a sign of life at t in heard (never moving backwards).
func heardAt(heard *atomic.Int64, t time.Time) {
	n := t.UnixNano()
	for {
		old := heard.Load()
		if n <= old || heard.CompareAndSwap(old, n) {
			return
		}
	}
}
