package links

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"hash/maphash"
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
// resets those found holding bytes: first those of the source (SetSource)
// whose counted streams may hold the most, so that a source filling
// streams it never reads pays with its own, not with an older stream of
// another source whose reader paused; within a source, longest stalled
// first, then largest.
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
//
// The pass's work per tick does not grow with idle streams. Only streams
// whose reader is not in a Read or Peek can hold bytes waiting: a stream
// joins the pass's watch list when it opens and when its reader leaves a
// Read (one atomic load on that path, and the link's queue lock at most
// once per look of the pass at the stream), and leaves it when the pass
// finds it reading again or ended, so idle readers parked in a Read (a
// relay's splice, a service's copy loop) cost nothing once seen. Each tick
// examines at most maxScan streams of the list, round robin; the streams
// counted as stalled sit in a heap, longest stalled then largest on top,
// with the sum of their bounds kept as they come and go, and a tick takes
// at most maxPops off it and looks at at most maxLooks. With no more than maxScan streams outside a Read every one
// is examined every tick; with more, a stream's state is brought up to
// date once per pass over the list (len/maxScan ticks), which delays when
// a stall is counted or a resumed reader leaves the sum; a stream's
// progress is checked again before it is looked at, so a reader found
// reading or progressing is never reset.
//
// What one source's streams hold unread on a link is bounded too, stalled
// or not: a source (SetSource) reading many streams just fast enough not
// to stall (a member trickling many downloads through a relay, whose
// splices read each stream from the next hop only as fast as the member
// takes it) would otherwise hold the whole window with streams that each
// hold most of their own. Each stream the pass examines is measured (what
// it holds of the connection window, received and not read, from QUIC)
// unless its reader kept up: took since the last measure at least what it
// now holds. A source's hold is the sum of its streams' last measures;
// while it exceeds half the window (sourceShare) the pass resets the
// source's streams measured this tick holding the most, with StalledCode,
// until it no longer does. No stream may hold more than a quarter of the
// window (MaxStreamWindow), so a source with one or two circuits on a link
// is never reset this way, nor is a stream whose reader keeps up.
//
// A source is as its circuit's open names it, which the neighbour the
// circuit came from may make up: a member naming a new source, or a new
// relay before itself, for each circuit would hold the whole window with
// sources that each hold one stream's worth. The streams of one
// neighbour (SetNeighbour, proven by its link) are therefore bounded the
// same way, whatever sources they name: while they hold more than half
// the window the pass resets first those of the entry behind it holding
// the most (the node the neighbour names before itself, which it proved
// if it is honest), so that behind an honest router the node holding the
// most pays, not the router's other nodes, however many sources or
// relays that node makes up behind itself; a neighbour that makes up
// entries does so within its own half. What streams hold unread is queue
// for readers slower than the link (a splice into a slower link, a slow
// service): more of it makes them no faster, and half the window is more
// than most links have in flight. So the honest sources behind one
// neighbour (a router's leaves) share its half as one source's circuits
// did, and the other half stays for the circuits of other neighbours and
// the control stream. Streams
// never named are not bounded this way (the link cannot tell whose they
// are; node names every stream that carried an open), only reclaimed when
// stalled, as above. A source with many slow circuits on one link loses
// the fullest of them once they hold more than half the window, and keeps
// the rest. The measure takes the stream's QUIC lock once per examination,
// and only streams outside a Read are examined, so the pass keeps its
// bounds; with more than maxScan streams outside a Read, a source's hold
// adds measures up to a pass over the list old.
//
// A starved process is not a stalled reader. When this process runs late
// (the operating system runs others, or its own run queue is long), its
// readers run as late as its probe ticks do, and an honest reader that
// reads as soon as it runs may take nothing for ReaderStall. Each tick
// therefore adds how late it ran (from when it was due to after a yield:
// the time a goroutine made runnable then waited) to the pass's lateness,
// and a stream counts as stalled only once it has stalled for ReaderStall
// plus the lateness gathered since its stall began, at most
// stallLateCap × ReaderStall in all: a reader that never reads is reset
// at most that much later, and a peer that makes this process late
// holds credit that much longer.

// SourceKey names whom a circuit's streams count against in the reclaim
// (SetSource): a source proven by the link or by an end-to-end handshake
// (ProvenSource), or a source as claimed along the path of relays its
// open header recorded (ClaimedSource). Keys are 64-bit hashes under a
// seed drawn once per process, so building one allocates nothing: equal
// for equal names and paths, and a peer, which never sees a key, has no
// better way to make two differ yet collide than chance (2^-64 a pair).
type SourceKey uint64

var sourceSeed = maphash.MakeSeed()

// ProvenSource is the key of the source name, proven: the link's peer
// that opened the circuit, or the source an end-to-end handshake proved.
func ProvenSource(name string) SourceKey { return sourceKey(0, name, nil) }

// ClaimedSource is the key of the source name as claimed by the last
// relay of path, the relays an open header says it crossed, in order.
// It differs from ProvenSource(name) and from the key of any other path:
// claims that came along different paths count apart.
func ClaimedSource(name string, path []string) SourceKey { return sourceKey(1, name, path) }

func sourceKey(tag byte, name string, path []string) SourceKey {
	var h maphash.Hash
	h.SetSeed(sourceSeed)
	h.WriteByte(tag)
	writeField(&h, name)
	for _, p := range path {
		writeField(&h, p)
	}
	if k := SourceKey(h.Sum64()); k != 0 {
		return k
	}
	return 1 // 0 is the unnamed source
}

// writeField writes s with its length first, so that no two lists of
// strings write the same bytes.
func writeField(h *maphash.Hash, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	h.Write(n[:])
	h.WriteString(s)
}

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
	// maxScan bounds the watched streams examined per tick; maxPops the
	// counted streams taken off the heap per tick to be looked at.
	maxScan = 1024
	maxPops = 4 * maxLooks
	// stallLateCap bounds how long a stall may take to count however
	// late this process runs: stallLateCap × ReaderStall.
	stallLateCap = 4
)

// reclaimScan is the reclaim pass's state, owned by the probe loop.
type reclaimScan struct {
	watch   []*quicStream // streams whose reader was last seen outside a Read
	cursor  int           // next place in watch to examine
	counted stallHeap     // streams counted as stalled
	sum     uint64        // the bounds of counted together
	// bySource splits sum by the streams' sources (SetSource); a source
	// leaves it when its last stream does, so it holds at most one entry
	// per stream in the sum.
	bySource map[SourceKey]uint64
	// held is what the streams of each source were last measured
	// holding unread, those whose readers kept up left out, and heldBy
	// and heldIn the same by neighbour and by entry (SetNeighbour); a key
	// leaves them when its last measured stream does.
	held    map[SourceKey]uint64
	heldBy  map[SourceKey]uint64
	heldIn  map[SourceKey]uint64
	holding []*quicStream // scratch: the streams measured holding bytes this tick
	scanned int           // streams examined and taken off the heap by the last pass
	late    time.Duration // how late the passes ran, all together
	lookBuf [1]byte       // the look at unread bytes
	stalled []*quicStream // scratch: the streams found holding bytes
	// The link's queued and gone lists are swapped with these each tick,
	// so a reader leaving a Read appends to a slice that has room: the
	// success path of Read allocates nothing however often it is queued.
	spareQueued, spareGone []*quicStream
}

// stallHeap orders counted streams longest stalled first, then largest
// bound: the bound grows with what a stream has read, so ordering by size
// alone would reset a long-lived circuit whose reader just paused before a
// peer's streams that never read at all.
type stallHeap []*quicStream

func (h stallHeap) Len() int { return len(h) }
func (h stallHeap) Less(i, j int) bool {
	if c := h[i].since.Compare(h[j].since); c != 0 {
		return c < 0
	}
	return h[i].bound > h[j].bound
}
func (h stallHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *stallHeap) Push(x any) {
	s := x.(*quicStream)
	s.hidx = len(*h)
	*h = append(*h, s)
}
func (h *stallHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.hidx = -1
	return s
}

// opened queues a stream whose receive side just opened.
func (l *quicLink) opened(s *quicStream) {
	s.watched.Store(true)
	l.cmu.Lock()
	l.queued = append(l.queued, s)
	l.cmu.Unlock()
}

// ended tells the reclaim pass that a stream's receive side ended.
func (l *quicLink) ended(s *quicStream) {
	l.cmu.Lock()
	l.gone = append(l.gone, s)
	l.cmu.Unlock()
}

// left ends a Read or Peek: a reader outside a Read may stall, so the
// stream is queued for the reclaim pass unless it is watched already.
func (s *quicStream) left() {
	if s.reading.Add(-1) == 0 && !s.watched.Load() && s.watched.CompareAndSwap(false, true) {
		l := s.link
		l.cmu.Lock()
		l.queued = append(l.queued, s)
		l.cmu.Unlock()
	}
}

// spare empties a list the pass took from the link for the next swap,
// unless a burst made it larger than a pass's work.
func spare(list []*quicStream) []*quicStream {
	if cap(list) > maxScan {
		return nil
	}
	clear(list)
	return list[:0]
}

// drop takes the stream at i off the watch list.
func (r *reclaimScan) drop(i int) {
	s, last := r.watch[i], len(r.watch)-1
	if i != last {
		r.watch[i] = r.watch[last]
		r.watch[i].widx = i
	}
	r.watch[last] = nil
	r.watch = r.watch[:last]
	s.widx = -1
}

// unreadBound is the most a stream whose reader took got bytes may hold
// unread.
func (c *QUICConfig) unreadBound(got int64) uint64 {
	init := min(initialStreamWindow, c.MaxStreamWindow)
	return min(c.MaxStreamWindow, max(init, 4*uint64(max(got, 0))))
}

// count puts s, stalled with bound b, in the sum (or updates its bound
// and source).
func (r *reclaimScan) count(s *quicStream, b uint64) {
	if s.hidx < 0 {
		if r.bySource == nil {
			r.bySource = make(map[SourceKey]uint64)
		}
		s.src, s.bound = s.sourceKey(), b
		r.sum += b
		r.bySource[s.src] += b
		heap.Push(&r.counted, s)
		return
	}
	if src := s.sourceKey(); src != s.src { // named again (SetSource)
		r.shed(s)
		s.src, s.bound = src, b
		r.sum += b
		r.bySource[src] += b
		heap.Fix(&r.counted, s.hidx)
		return
	}
	if s.bound != b {
		r.sum += b - s.bound
		r.bySource[s.src] += b - s.bound
		s.bound = b
		heap.Fix(&r.counted, s.hidx)
	}
}

// uncount takes s out of the sum.
func (r *reclaimScan) uncount(s *quicStream) {
	if s.hidx >= 0 {
		heap.Remove(&r.counted, s.hidx)
		r.shed(s)
	}
}

// shed takes s, off the heap, out of the sum.
func (r *reclaimScan) shed(s *quicStream) {
	r.sum -= s.bound
	untally(r.bySource, s.src, s.bound)
}

// untally takes n off m[k], and k out of m once nothing is left.
func untally(m map[SourceKey]uint64, k SourceKey, n uint64) {
	if left := m[k] - n; left > 0 {
		m[k] = left
	} else {
		delete(m, k)
	}
}

// heaviest is the index in stalled of the first stream whose source holds
// the most of the sum.
func (r *reclaimScan) heaviest(stalled []*quicStream) int {
	best, most := 0, uint64(0)
	for i, s := range stalled {
		if b := r.bySource[s.src]; b > most {
			best, most = i, b
		}
	}
	return best
}

// measure records what s, examined and still watched, holds unread,
// unless its reader took since the last measure at least that much.
func (r *reclaimScan) measure(s *quicStream) {
	got := s.got.Load()
	var h uint64
	if s.reading.Load() == 0 && s.done.Load()&doneRead == 0 {
		if u := s.s.Unread(); u > got-s.heldGot {
			h = uint64(u)
		}
	}
	s.heldGot = got
	r.hold(s, h)
	if s.held > 0 {
		r.holding = append(r.holding, s)
	}
}

// hold counts s as holding h against its source and its neighbour; a
// stream never named counts as holding nothing: the link cannot tell
// whose it is.
func (r *reclaimScan) hold(s *quicStream, h uint64) {
	if s.held > 0 {
		untally(r.held, s.hsrc, s.held)
		untally(r.heldBy, s.hnb, s.held)
		untally(r.heldIn, s.hent, s.held)
	}
	k := s.sourceKey()
	if k == 0 {
		h = 0
	}
	s.held, s.hsrc, s.hnb, s.hent = h, k, s.neighbourKey(), s.entryKey()
	if h > 0 {
		if r.held == nil {
			r.held = make(map[SourceKey]uint64)
			r.heldBy = make(map[SourceKey]uint64)
			r.heldIn = make(map[SourceKey]uint64)
		}
		r.held[s.hsrc] += h
		r.heldBy[s.hnb] += h
		r.heldIn[s.hent] += h
	}
}

// sourceShare is the most the streams of one source, or of one
// neighbour, may hold unread on a link: half its window.
func (c *QUICConfig) sourceShare() uint64 { return c.LinkWindow / 2 }

// capSources resets, among the streams measured this tick, those of each
// source or neighbour holding more than its share, until it no longer
// does: those of the entries holding the most first, within an entry the
// fullest. It returns how many it reset.
func (l *quicLink) capSources() int {
	cfg := &l.t.cfg
	r := &l.scan
	share := cfg.sourceShare()
	holding := r.holding
	defer func() { clear(holding); r.holding = holding[:0] }()
	over := func(s *quicStream) bool { return r.held[s.hsrc] > share || r.heldBy[s.hnb] > share }
	if !slices.ContainsFunc(holding, over) {
		return 0
	}
	slices.SortFunc(holding, func(a, b *quicStream) int {
		if c := cmp.Compare(r.heldIn[b.hent], r.heldIn[a.hent]); c != 0 {
			return c
		}
		return cmp.Compare(b.held, a.held)
	})
	n := 0
	for _, s := range holding {
		if s.held == 0 || !over(s) {
			continue
		}
		held := s.held
		r.uncount(s)
		l.resetStalled(s, held)
		n++
	}
	return n
}

// resetStalled resets s, out of the pass's sums but its hold, with the
// stalled code and counts it; unread is what it was counted holding.
func (l *quicLink) resetStalled(s *quicStream, unread uint64) {
	cfg := &l.t.cfg
	l.scan.hold(s, 0)
	s.Reset(cfg.StalledCode)
	l.t.stalled.Add(1)
	if cfg.OnStalled != nil {
		cfg.OnStalled(l.hello.Node, unread)
	}
}

// stalled reports whether s's receive side is open, no Read is in
// progress and its reader took too little since it was last seen making
// progress; if it read, that is now its last progress.
func (s *quicStream) stalled(cfg *QUICConfig) bool {
	if s.done.Load()&doneRead != 0 {
		return false
	}
	got := s.got.Load()
	if s.reading.Load() > 0 || uint64(got-s.mark) >= min(cfg.unreadBound(got)/4, stallProgress) {
		s.mark, s.since = got, time.Time{}
		return false
	}
	return true
}

// allowance is how long s must stall to count: stall plus how late this
// process ran since s stalled, at most stallLateCap × stall.
func (r *reclaimScan) allowance(s *quicStream, stall time.Duration) time.Duration {
	return stall + min(r.late-s.sinceLate, (stallLateCap-1)*stall)
}

// examine brings s's state up to date and reports whether it stays on
// the watch list.
func (l *quicLink) examine(s *quicStream, now time.Time) bool {
	cfg := &l.t.cfg
	r := &l.scan
	if s.stalled(cfg) {
		switch {
		case s.since.IsZero():
			s.since, s.sinceLate = now, r.late
		case now.Sub(s.since) >= r.allowance(s, cfg.ReaderStall) && now.Sub(s.idleAt) >= cfg.ReaderStall:
			r.count(s, cfg.unreadBound(s.got.Load()))
			return true
		}
		r.uncount(s)
		return true
	}
	r.uncount(s)
	if s.done.Load()&doneRead != 0 {
		return false // watched stays set: never queued again
	}
	if s.reading.Load() == 0 {
		return true // it read and left the Read: stays watched
	}
	// Parked in a Read: off the list until the reader leaves it. A reader
	// that left meanwhile saw watched still set, so look again.
	s.watched.Store(false)
	return s.reading.Load() == 0 && s.watched.CompareAndSwap(false, true)
}

// reclaim resets the streams whose readers stalled while they may hold
// more than half the link window; late is how late this tick ran. It
// runs on the probe loop only, which owns the scan and the streams' mark,
// since, sinceLate, bound, idleAt and hidx.
func (l *quicLink) reclaim(now time.Time, late time.Duration) {
	cfg := &l.t.cfg
	r := &l.scan
	r.late += max(late, 0)
	budget := cfg.LinkWindow / 2
	l.cmu.Lock()
	queued, gone := l.queued, l.gone
	l.queued, l.gone = r.spareQueued, r.spareGone
	l.cmu.Unlock()
	for _, s := range queued {
		s.widx = len(r.watch)
		r.watch = append(r.watch, s)
	}
	// Ended streams leave at once, not when the cursor comes to them.
	for _, s := range gone {
		r.uncount(s)
		r.hold(s, 0)
		if s.widx >= 0 {
			r.drop(s.widx)
		}
	}
	r.spareQueued, r.spareGone = spare(queued), spare(gone)
	r.scanned = 0
	for n := min(maxScan, len(r.watch)); n > 0; n-- {
		if r.cursor >= len(r.watch) {
			r.cursor = 0
		}
		s := r.watch[r.cursor]
		r.scanned++
		if l.examine(s, now) {
			r.measure(s)
			r.cursor++
			continue
		}
		r.hold(s, 0)
		r.drop(r.cursor)
	}
	if n := l.capSources(); n > 0 {
		l.t.stallLog.Warn(l.hello.Node, "reset circuit streams of a source or neighbour holding more than its share of the link's receive buffer",
			"peer", l.hello.Node, "reset", n, "source_share", cfg.sourceShare(), "link_window", cfg.LinkWindow,
			"total_reset", l.t.stalled.Load())
	}
	if len(r.watch) < cap(r.watch)/4 && cap(r.watch) > 2*maxScan {
		r.watch = slices.Clone(r.watch) // give back what a burst took
	}
	if r.sum <= budget {
		return // even if every stalled reader had its window full
	}
	// Look at the longest stalled: those found holding nothing leave the
	// sum (those not looked at this tick stay in it, at their bound).
	stalled := r.stalled[:0]
	looks := 0
	for pops := 0; pops < maxPops && looks < maxLooks && r.counted.Len() > 0; pops++ {
		s := heap.Pop(&r.counted).(*quicStream)
		r.scanned++
		if !s.stalled(cfg) { // it read since it was examined
			r.shed(s)
			continue
		}
		looks++
		if !s.unread(r.lookBuf[:]) {
			s.idleAt = now
			r.shed(s)
			continue
		}
		stalled = append(stalled, s)
	}
	// Reset those of the source holding the most first, in the heap's
	// order within a source, while the sum exceeds the budget.
	n, found := 0, len(stalled)
	for r.sum > budget && len(stalled) > 0 {
		i := r.heaviest(stalled)
		s := stalled[i]
		stalled = slices.Delete(stalled, i, i+1)
		r.shed(s)
		l.resetStalled(s, s.bound)
		n++
	}
	// Those left in the sum go back on the heap.
	for _, s := range stalled {
		heap.Push(&r.counted, s)
	}
	clear(stalled)
	r.stalled = stalled[:0]
	if n > 0 {
		l.t.stallLog.Warn(l.hello.Node, "reset circuit streams whose readers stalled holding the link's receive buffer",
			"peer", l.hello.Node, "reset", n, "stalled", found, "link_window", cfg.LinkWindow,
			"reader_stall", cfg.ReaderStall, "total_reset", l.t.stalled.Load())
	}
}

// StalledStreams is the number of streams reset because their readers
// stalled holding link buffer (QUICConfig.ReaderStall), or because their
// source held more than half the link window (QUICConfig.LinkWindow).
func (t *QUICTransport) StalledStreams() uint64 { return t.stalled.Load() }

// ReceiveWindows reports the receive windows given to QUIC: the most one
// link may hold unread (the connection window) and one stream (the
// stream window).
func (t *QUICTransport) ReceiveWindows() (link, stream uint64) {
	return t.quicConf.MaxConnectionReceiveWindow, t.quicConf.MaxStreamReceiveWindow
}
