package links

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// ctrlReadSize is the buffer readLoop reads the control stream through. A
// frame may be as short as its 5-byte header, and each read of a QUIC
// stream takes the stream's and the connection's locks and accounts the
// bytes to flow control: read directly, a peer's control frames cost the
// node two such reads each, many times the CPU per byte of circuit data
// (TestAttackTinyControlFramesReadInBulk).
const ctrlReadSize = 4 << 10

// readLoop reads control frames until the link ends.
func (l *quicLink) readLoop() {
	defer l.t.wg.Done()
	src := &ctrlSource{r: l.ctrl, count: l.t.cfg.testCtrlReads}
	in := bufio.NewReaderSize(src, ctrlReadSize)
	now := time.Now()
	for {
		f, err := readFrame(in)
		if err != nil {
			l.readFailed(err)
			return
		}
		// A frame that needed no read of the stream arrived with the one
		// before it, and is the same sign of life: the clock, the
		// detector's lock and the peer's last sign of life, a noticeable
		// part of a short frame's cost, are taken once a read rather than
		// once a frame.
		if src.read {
			src.read = false
			now = time.Now()
			l.heard(now)
			l.gaps.observe(now)
		}
		switch f.typ {
		case frameRouting:
			l.event(func() { l.t.cfg.Handler.Routing(l, f.payload) })
		case frameProbe:
			if _, _, err := parseProbe(f.payload); err != nil {
				l.protocolError(err)
				return
			}
			// The reply carries the probe's seq and stamp, the bytes a
			// measurement reads: a longer probe would have the node send
			// back, ahead of everything else, as much as the peer sends.
			// It is queued at the clock's time, not the frame's stamp: the
			// write deadline counts from it (writeLoop).
			b, _ := appendFrame(nil, frameProbeReply, f.payload[:probeLen])
			select {
			case l.prioQ <- ctrlFrame{b, time.Now()}:
			default: // the peer probes faster than we can answer
			}
		case frameProbeReply:
			if _, _, err := parseProbe(f.payload); err != nil {
				l.protocolError(err)
				return
			}
		case frameDraining:
			l.peerDrains()
		case frameGoodbye:
			l.byeSeen.Store(true)
			reason := PeerText(string(f.payload))
			l.down(fmt.Errorf("link to %s: %w: peer said goodbye: %s", l.hello.Node, ErrLinkLost, reason), codeGoodbye, "goodbye received")
			return
		case frameHello, frameReady:
			l.protocolError(fmt.Errorf("unexpected frame type %#x after the handshake: %w", f.typ, errBadFrame))
			return
		}
	}
}

// heard records a sign of life at t (never moving backwards).
func (l *quicLink) heard(t time.Time) {
	n := t.UnixNano()
	for {
		old := l.lastHeard.Load()
		if n <= old || l.lastHeard.CompareAndSwap(old, n) {
			return
		}
	}
}

func (l *quicLink) readFailed(err error) {
	if l.Err() != nil {
		return
	}
	if isConnErr(err) {
		l.down(l.connLost(err), codeGoodbye, "")
		return
	}
	if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, errBadFrame) {
		l.protocolError(err)
		return
	}
	l.down(fmt.Errorf("link to %s: %w: control stream: %w", l.hello.Node, ErrLinkLost, mapStreamErr(err)), codeProtocol, "control stream ended")
}

// protocolError closes the link for a frame the peer should not have
// sent. Its WARN line is logged once per peer a minute (abortLog, which
// logs the links closed for what the peer did), the next carrying the
// count held back: a holder of a certificate can link, send one bad
// frame and link again at the handshake rate.
func (l *quicLink) protocolError(err error) {
	l.t.abortLog.Warn("protocol "+l.hello.Node, "link protocol error", "peer", l.hello.Node, "err", err)
	l.down(fmt.Errorf("link to %s: %w: protocol error: %w", l.hello.Node, ErrLinkLost, err), codeProtocol, err.Error())
}

// ctrlFrame is an encoded control frame queued for writeLoop, with the
// time it was queued.
type ctrlFrame struct {
	b  []byte
	at time.Time
}

// writeLoop writes queued control frames, probes and replies first. A
// frame must be written within ControlStall of the later of its queueing
// and the end of the previous write: a peer that gives no flow-control
// credit on its control stream (it stopped reading it) held every frame
// queued for it, up to ControlBytes, for as long as the link lasted, and
// the link lasted, as it sends its own probes and the detector hears
// them; it is closed instead. A peer that keeps taking frames, however
// slowly (a full routing dump over a slow link, a CPU-starved peer), is
// not: it may hold the queue's bound (ControlBytes) meanwhile.
func (l *quicLink) writeLoop() {
	defer l.t.wg.Done()
	var progress time.Time // when the last write completed
	for {
		var f ctrlFrame
		select {
		case <-l.done:
			return
		case f = <-l.prioQ:
		default:
			select {
			case <-l.done:
				return
			case f = <-l.prioQ:
			case f = <-l.routingQ:
				l.routingBytes.Add(-int64(len(f.b)))
			}
		}
		since := f.at
		if progress.After(since) {
			since = progress // the frames ahead of it were being taken
		}
		l.writeMu.Lock()
		_ = l.ctrl.SetWriteDeadline(since.Add(l.t.cfg.ControlStall))
		_, err := l.ctrl.Write(f.b)
		l.writeMu.Unlock()
		progress = time.Now()
		if err != nil {
			if stalled := time.Since(since); errors.Is(err, os.ErrDeadlineExceeded) && stalled >= l.t.cfg.ControlStall {
				l.controlStalled(stalled)
				return
			}
			l.readFailed(err)
			return
		}
	}
}

// controlStalled ends the link because no control frame could be written
// for stalled: the peer took nothing of its control stream meanwhile.
func (l *quicLink) controlStalled(stalled time.Duration) {
	if l.Err() != nil {
		return
	}
	reason := fmt.Sprintf("%s took no control frame for %v", l.hello.Node, stalled.Round(time.Millisecond))
	l.t.cfg.Logger.Warn("closing link: peer does not read its control stream", "peer", l.hello.Node,
		"remote", l.conn.RemoteAddr().String(), "stalled", stalled, "routing_queued", len(l.routingQ),
		"routing_queued_bytes", l.routingBytes.Load())
	l.down(fmt.Errorf("link to %s: %w: control stream: %s", l.hello.Node, ErrLinkLost, reason), codeLost, reason)
}

// probeLoop sends probes, declares the peer dead after a silence longer
// than the detector's allowance (at least ProbeMisses intervals) plus what
// this process's own delays explain (see queueHops), and samples link
// quality.
func (l *quicLink) probeLoop() {
	defer l.t.wg.Done()
	cfg := &l.t.cfg
	ticks, stop := probeTicker(cfg.ProbeInterval)
	defer stop()
	floor := time.Duration(cfg.ProbeMisses) * cfg.ProbeInterval
	var seq uint64
	prev := time.Now()
	var late time.Duration // how late our own ticks ran since we last heard the peer
	// The longest delay of this process measured since then, -1 before
	// the first: how late a tick ran, from when it was due to after a
	// yield. A goroutine that carries the peer's frames here may have
	// waited that long at each queue it crossed, whether the run queue
	// was long at that moment (the yield) or the process was not run at
	// all (the timer's delay: under a CPU quota, the process is stopped
	// once it used its share of a period, and its timers fire when the
	// next period begins): either way the silence is this process's, not
	// the peer's. The yield alone missed the quota's stops: a timer fires
	// first when the process runs again, its yield then takes
	// microseconds, and its ticks, each as late as the last, stay one
	// interval apart, so late (below) misses them too.
	// (The shortest wait, used before, let a single quiet tick among busy
	// ones shrink the allowance back to the floor: a relay under a flood
	// of stalled circuits, its peers in the same process, declared them
	// dead at 963 ms.)
	wait := time.Duration(-1)
	heardAt := l.lastHeard.Load()
	for {
		select {
		case <-l.done:
			return
		case due := <-ticks:
			// The tick's value is when it was due; the loop may run much
			// later, and a goroutine woken by the network waits longer
			// still: a timer's goroutine runs next, one whose packet
			// arrived joins the back of the run queue. The time a yield
			// takes measures that queue; the time from the tick's due
			// time to after the yield adds the timer's own delay.
			runtime.Gosched()
			now := time.Now()
			// Packets arriving also prove the peer alive: under heavy
			// load a probe reply may queue behind circuit data.
			// They arrived after the previous tick: count them from then.
			if recv := l.conn.ConnectionStats().PacketsReceived; recv != l.lastRecv {
				l.lastRecv = recv
				l.heard(prev)
			}
			// A tick that runs two intervals late or more means this
			// process was not scheduled (CPU starvation): it cannot tell a
			// silent peer from its own stall, so the peer gets a fresh
			// window from now. A dead peer is then detected one window
			// after the stall, never falsely.
			if now.Sub(prev) > 3*cfg.ProbeInterval {
				l.heard(now)
			}
			// Smaller delays of our own ticks are not the peer's silence
			// either: they are taken off it.
			if h := l.lastHeard.Load(); h != heardAt {
				heardAt, late, wait = h, 0, -1
			}
			late += max(now.Sub(prev)-cfg.ProbeInterval, 0)
			wait = max(wait, now.Sub(due))
			prev = now
			silent := now.Sub(time.Unix(0, heardAt)) - late
			if deadAfter := l.allowance(floor, wait); silent > deadAfter {
				reason := fmt.Sprintf("no answer from %s for %v (%d probes missed)", l.hello.Node, silent.Round(time.Millisecond), int(silent/cfg.ProbeInterval))
				// One line per peer per linkLogPeriod (lifeLog), as for
				// link down: a peer can link and go silent again and again.
				l.t.lifeLog.Warn("dead "+l.hello.Node, "link dead", "peer", l.hello.Node, "remote", l.conn.RemoteAddr().String(), "silent", silent, "own_delay", wait)
				l.deadAllow, l.deadLate = deadAfter, late
				l.deadAt, l.deadFrom = now, time.Unix(0, heardAt)
				l.down(fmt.Errorf("link to %s: %w: %s", l.hello.Node, ErrLinkLost, reason), codeLost, reason)
				return
			}
			seq++
			b, _ := appendFrame(nil, frameProbe, probePayload(seq, now.UnixNano()))
			select {
			case l.prioQ <- ctrlFrame{b, now}:
			default:
			}
			l.sampleQuality()
			l.reclaim(now, now.Sub(due))
		}
	}
}

// testProbeTicks, when set, makes the tickers of the probe loops started
// from then on (tests: ticks that arrive late, as a stopped process's).
var testProbeTicks atomic.Pointer[func(time.Duration) (<-chan time.Time, func())]

// probeTicker returns the probe loop's ticks every d, each carrying the
// time it was due, and what stops them.
func probeTicker(d time.Duration) (<-chan time.Time, func()) {
	if f := testProbeTicks.Load(); f != nil {
		return (*f)(d)
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// queueHops is how many run queues of this process a frame of the peer
// may wait in before it counts as heard: the peer's answer to our probe
// crosses our UDP reader, the connection's loop and the control stream's
// reader here, and as many goroutines at a peer in the same process (the
// nodes of a test, of a simulation).
const queueHops = 6

// allowance is the silence after which the peer is dead: the detector's
// allowance plus queueHops × wait, the longest delay of this process (a
// tick's lateness), at most detectorCap × floor in all, as before. On a
// process that runs when its timers fall due and has an empty run queue,
// a tick is late by microseconds and the detector decides alone.
func (l *quicLink) allowance(floor, wait time.Duration) time.Duration {
	return min(l.gaps.allowance(floor)+queueHops*max(wait, 0), detectorCap*floor)
}

// peerDrains handles the peer's draining frame: from now on the link
// reports the highest cost, so routing moves new circuits away from the
// peer while the circuits already crossing the link carry on.
func (l *quicLink) peerDrains() {
	if l.draining.Swap(true) {
		return
	}
	q := l.Quality()
	q.Cost, q.Draining = maxCost, true
	l.quality.Store(&q)
	// One line per peer per linkLogPeriod, as for link up and down: a
	// peer can link, send one draining frame and close at the handshake
	// rate.
	l.t.lifeLog.At(slog.LevelInfo, "drain "+l.hello.Node, "peer draining: routing around it", "peer", l.hello.Node)
	l.event(func() { l.t.cfg.Handler.CostChanged(l, q) })
}

// sendDraining queues a draining frame for the peer.
func (l *quicLink) sendDraining() {
	b, _ := appendFrame(nil, frameDraining, nil)
	// Past ControlBytes too (5 bytes); a queue full of routing frames
	// drops it: the goodbye still follows.
	_ = l.queueRouting(b, false)
}

func (l *quicLink) sampleQuality() {
	st := l.conn.ConnectionStats()
	q, changed := l.meter.sample(st.SmoothedRTT, st.MeanDeviation, st.PacketsSent, st.PacketsLost)
	if l.draining.Load() {
		q.Cost, q.Draining, changed = maxCost, true, false
	}
	l.quality.Store(&q)
	if changed {
		l.event(func() { l.t.cfg.Handler.CostChanged(l, q) })
	}
}

// ctrlSource is the control stream under readLoop's buffer: it notes
// that a read of the stream took place, and counts the reads in count
// when set (QUICConfig.testCtrlReads).
type ctrlSource struct {
	r     io.Reader
	read  bool
	count *atomic.Int64
}

func (c *ctrlSource) Read(p []byte) (int, error) {
	c.read = true
	if c.count != nil {
		c.count.Add(1)
	}
	return c.r.Read(p)
}
