package links

import (
	"slices"
	"time"
)

// A link's receive buffer is bounded by its connection window
// (QUICConfig.LinkWindow), which all its streams share. A stream whose
// reader stops (a service that never reads, a relay whose next hop stopped
// taking data) keeps the credit of the bytes it holds unread; enough of
// them would leave the other circuits and the control stream without
// credit. Each probe tick the link therefore looks for stalled streams: no
// Read in progress, too little read for ReaderStall, and bytes waiting
// unread. While what they may hold together exceeds half the window, it
// resets those found holding bytes, longest stalled first, then largest.
// A stream whose reader is merely idle (nothing waits) is never reset; a
// slow reader taking less than stallProgress per ReaderStall while bytes
// wait counts as stalled.
//
// A stream counts only once it stalled for ReaderStall, seen at a tick
// (and one seen holding nothing is left out for ReaderStall more), so a
// peer that keeps opening streams it fills can hold the uncounted half of
// the window with young streams, each for about that long: the reclaim
// bounds how long a stopped reader holds credit and what counted streams
// hold, not what such a peer holds at one moment.
//
// The bytes a stream may hold unread are bounded by its receive window,
// which quic-go doubles only after the reader took more than half of it in
// one round of auto-tuning: so at most max(initial window, 4 × bytes
// read), and at most MaxStreamWindow.

const (
	// stallProgress is the least a stalled reader must take in
	// ReaderStall to count as reading again (or a quarter of what it may
	// hold, if less).
	stallProgress = 16 << 10
	// lookWait bounds the wait of a look at a stream holding nothing;
	// maxLooks bounds the looks per tick, and a stream seen holding
	// nothing is looked at again only after ReaderStall.
	lookWait = 100 * time.Microsecond
	maxLooks = 64
)

// track registers a stream whose receive side is open.
func (l *quicLink) track(s *quicStream) {
	l.smu.Lock()
	if l.live == nil {
		l.live = make(map[*quicStream]struct{})
	}
	l.live[s] = struct{}{}
	l.smu.Unlock()
}

// untrack forgets a stream whose receive side ended.
func (l *quicLink) untrack(s *quicStream) {
	l.smu.Lock()
	delete(l.live, s)
	l.smu.Unlock()
}

// unreadBound is the most a stream whose reader took got bytes may hold
// unread.
func (c *QUICConfig) unreadBound(got int64) uint64 {
	init := min(initialStreamWindow, c.MaxStreamWindow)
	return min(c.MaxStreamWindow, max(init, 4*uint64(max(got, 0))))
}

// reclaim resets the streams whose readers stalled while they may hold
// more than half the link window; it runs on the probe loop only, which
// owns the streams' mark, since, bound and idleAt.
func (l *quicLink) reclaim(now time.Time) {
	cfg := &l.t.cfg
	budget := cfg.LinkWindow / 2
	var idle []*quicStream
	var sum uint64
	l.smu.Lock()
	for s := range l.live {
		got := s.got.Load()
		b := cfg.unreadBound(got)
		if s.reading.Load() > 0 || uint64(got-s.mark) >= min(b/4, stallProgress) {
			s.mark, s.since = got, time.Time{}
			continue
		}
		if s.since.IsZero() {
			s.since = now
			continue
		}
		if now.Sub(s.since) >= cfg.ReaderStall && now.Sub(s.idleAt) >= cfg.ReaderStall {
			s.bound = b
			sum += b
			idle = append(idle, s)
		}
	}
	l.smu.Unlock()
	if sum <= budget {
		return // even if every idle reader had its window full
	}
	// Longest stalled first, then largest: the bound grows with what a
	// stream has read, so ordering by size alone would reset a long-lived
	// circuit whose reader just paused before a peer's streams that never
	// read at all.
	slices.SortFunc(idle, func(a, b *quicStream) int {
		if c := a.since.Compare(b.since); c != 0 {
			return c
		}
		if a.bound != b.bound {
			if a.bound > b.bound {
				return -1
			}
			return 1
		}
		return 0
	})
	// Look at the longest stalled: those found holding nothing leave the
	// sum (those not looked at this tick stay in it, at their bound).
	var stalled []*quicStream
	for i, s := range idle {
		if i == maxLooks {
			break
		}
		if !s.unread(l.lookBuf[:]) {
			s.idleAt = now
			sum -= s.bound
			continue
		}
		stalled = append(stalled, s)
	}
	n := 0
	for _, s := range stalled {
		if sum <= budget {
			break
		}
		sum -= s.bound
		s.Reset(cfg.StalledCode)
		n++
		l.t.stalled.Add(1)
		if cfg.OnStalled != nil {
			cfg.OnStalled(l.hello.Node, s.bound)
		}
	}
	if n > 0 {
		l.t.stallLog.Warn(l.hello.Node, "reset circuit streams whose readers stalled holding the link's receive buffer",
			"peer", l.hello.Node, "reset", n, "stalled", len(stalled), "link_window", cfg.LinkWindow,
			"reader_stall", cfg.ReaderStall, "total_reset", l.t.stalled.Load())
	}
}

// StalledStreams is the number of streams reset because their readers
// stalled holding link buffer (QUICConfig.ReaderStall).
func (t *QUICTransport) StalledStreams() uint64 { return t.stalled.Load() }

// ReceiveWindows reports the receive windows given to QUIC: the most one
// link may hold unread (the connection window) and one stream (the
// stream window).
func (t *QUICTransport) ReceiveWindows() (link, stream uint64) {
	return t.quicConf.MaxConnectionReceiveWindow, t.quicConf.MaxStreamReceiveWindow
}
