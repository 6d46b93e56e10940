package circuit

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// DefaultSpliceBuffer is the per-direction buffer of a splice when
// bufSize <= 0. Buffers of this size are pooled, and so are those of the
// first maxSplicePools other sizes splices ask for.
const DefaultSpliceBuffer = 32 << 10

var spliceBufs = sync.Pool{New: func() any {
	b := make([]byte, DefaultSpliceBuffer)
	return &b
}}

// maxSplicePools bounds the buffer sizes other than DefaultSpliceBuffer
// that get a pool of their own (a node passes one size, its
// Limits.RelayBuffer); buffers of further sizes are allocated per take.
const maxSplicePools = 4

// splicePools holds the pools of the other sizes, *sync.Pool by size.
var (
	splicePools     sync.Map
	splicePoolCount atomic.Int32
)

// splicePool is the pool for buffers of size bytes, or nil once
// maxSplicePools sizes have one.
func splicePool(size int) *sync.Pool {
	if size == DefaultSpliceBuffer {
		return &spliceBufs
	}
	if p, ok := splicePools.Load(size); ok {
		return p.(*sync.Pool)
	}
	if splicePoolCount.Add(1) > maxSplicePools {
		splicePoolCount.Add(-1)
		return nil
	}
	p, loaded := splicePools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	if loaded {
		splicePoolCount.Add(-1)
	}
	return p.(*sync.Pool)
}

// SpliceStats counts the bytes a splice copied each way.
type SpliceStats struct {
	Up   int64 // from a to b (towards the destination)
	Down int64 // from b to a (towards the caller)
}

// SpliceBounds bound the states a peer can leave a splice in. Zero fields
// mean no bound. A splice that runs into one resets both streams with
// CloseTimeout.
//
// The bounds are kept by a watchdog timer of the splice, not by deadlines
// on the streams: a chunk costs the copy loop two atomic increments, and
// the timer runs only while a write is in progress or the splice is
// half-closed (an idle splice holds none). The watchdog looks every
// quarter of the smaller bound (at least every 10 ms), so a state is
// ended after its bound and at most a quarter of it (or 10 ms) more.
type SpliceBounds struct {
	// Stall bounds a write that makes no progress: the reader on that
	// side stopped reading (its flow-control window stays shut).
	Stall time.Duration
	// HalfClosed bounds the silence of the remaining direction once the
	// other one ended cleanly: a half-closed circuit whose other side
	// neither sends nor closes. The silence counts from the half-close
	// or the direction's last write, whichever is later.
	HalfClosed time.Duration
	// Hop is this relay's hop number on the circuit (1 for the first relay
	// from the source). Resets the splice produces carry it (CloseCode), so
	// the ends learn where the circuit broke. 0 leaves them unstamped.
	Hop int
	// Counters, when not nil, count the bytes the splice copies as they
	// move, so their owner can read them while the splice runs.
	Counters *SpliceCounters
	// OnHalfClose, when not nil, is called once for each direction that
	// ends cleanly (up: toward the destination), from the splice's
	// goroutine.
	OnHalfClose func(up bool)
}

// SpliceCounters are the bytes a splice copied each way so far. Each
// direction is written by one goroutine only.
type SpliceCounters struct {
	Up, Down atomic.Int64
}

// Splicer is a running splice between two streams. Its zero value is not
// usable; create one with StartSplice.
type Splicer struct {
	bounds    SpliceBounds
	a, b      links.Stream
	own       SpliceCounters
	ctr       *SpliceCounters // own, or the caller's
	resetOnce sync.Once
	running   atomic.Int32 // directions still copying
	peek      [2]byte      // one byte per direction to Peek into
	done      chan struct{}
	onDone    func(SpliceStats, error) // called once both directions are done
	mu        sync.Mutex
	err       error // first failure
	// writes counts, per direction (up, down), the starts and ends of
	// its writes: odd while a write is in progress. The watchdog reads
	// it; watched is set while its timer runs (see arm and watch).
	writes  [2]atomic.Uint64
	watched atomic.Bool
	// half is 1 + the direction that ended cleanly first (0: none yet),
	// halfAt when (Unix ns).
	half   atomic.Int32
	halfAt atomic.Int64
	wd     watchdog
}

// watchdog is the state of a splice's bounds timer, guarded by its mu.
type watchdog struct {
	mu    sync.Mutex
	timer *time.Timer // nil while not watching
	over  bool        // the splice is done: never watch again
	every time.Duration
	// seen is each direction's writes count at the last look (noSeen
	// after a pause of the watchdog), since when it has not changed.
	seen  [2]uint64
	since [2]time.Time
}

const (
	up, down = 0, 1
	noSeen   = ^uint64(0)
	// minWatch is the least period of the watchdog.
	minWatch = 10 * time.Millisecond
)

// Splice joins a (the stream from the previous hop) and b (the stream to the
// next hop) and copies bytes both ways until both directions are done. See
// StartSplice for the semantics. It returns nil when both directions ended
// with a clean half-close.
//
// Splice copies one direction in the calling goroutine, so a relayed
// circuit costs two goroutines, not three.
func Splice(a, b links.Stream, bufSize int) (SpliceStats, error) {
	return SpliceBounded(a, b, bufSize, SpliceBounds{})
}

// SpliceBounded is Splice with bounds on stalled and half-closed states.
func SpliceBounded(a, b links.Stream, bufSize int, bounds SpliceBounds) (SpliceStats, error) {
	sp := newSplicer(a, b)
	sp.bound(bounds)
	go sp.copy(down, bufSize)
	sp.copy(up, bufSize)
	return sp.Wait()
}

// StartSplice starts copying a→b and b→a, each direction through one buffer
// of bufSize bytes (DefaultSpliceBuffer when <= 0), so the splice itself
// never holds more than 2×bufSize bytes: a direction reads again only after
// the previous chunk was written, which carries backpressure from the slow
// end to the fast one.
//
// Ends propagate: EOF read from one stream becomes CloseWrite on the other;
// a stop-sending with CloseNormal seen while writing becomes CloseRead on
// the source; any other failure resets both streams, forwarding the peer's
// close-reason code (or CloseLinkLost for a lost link, CloseInternal for a
// local failure), so both ends of the circuit see it.
func StartSplice(a, b links.Stream, bufSize int) *Splicer {
	sp := newSplicer(a, b)
	go sp.copy(up, bufSize)
	go sp.copy(down, bufSize)
	return sp
}

// StartSpliceBounded is SpliceBounded without waiting: both directions
// run in goroutines of their own, and done, when not nil, is called from
// the last one to finish with what Wait returns. A relay that hands a
// circuit over this way lets its own goroutine end: that goroutine's
// stack, grown while it read the header and opened the next stream, then
// does not stay behind for the life of an idle circuit.
func StartSpliceBounded(a, b links.Stream, bufSize int, bounds SpliceBounds, done func(SpliceStats, error)) *Splicer {
	sp := newSplicer(a, b)
	sp.bound(bounds)
	sp.onDone = done
	go sp.copy(up, bufSize)
	go sp.copy(down, bufSize)
	return sp
}

// bound applies bounds before the splice starts.
func (sp *Splicer) bound(bounds SpliceBounds) {
	sp.bounds = bounds
	if bounds.Counters != nil {
		sp.ctr = bounds.Counters
	}
	sp.bounds.Stall, sp.bounds.HalfClosed = max(bounds.Stall, 0), max(bounds.HalfClosed, 0)
	for _, d := range []time.Duration{sp.bounds.Stall, sp.bounds.HalfClosed} {
		if every := max(d/4, minWatch); d > 0 && (sp.wd.every == 0 || every < sp.wd.every) {
			sp.wd.every = every
		}
	}
}

func newSplicer(a, b links.Stream) *Splicer {
	sp := &Splicer{a: a, b: b, done: make(chan struct{})}
	sp.ctr = &sp.own
	sp.running.Store(2)
	return sp
}

// Reset ends the splice from outside (e.g. at shutdown with
// CloseShuttingDown): both streams are reset with code. Only the first
// Reset, or the first failure, decides the code. It does nothing once the
// splice is done.
func (sp *Splicer) Reset(code uint64) {
	select {
	case <-sp.done:
		return
	default:
	}
	sp.reset(code, fmt.Errorf("circuit: splice reset locally: %w",
		&links.StreamResetError{Code: code}))
}

func (sp *Splicer) reset(code uint64, cause error) {
	sp.resetOnce.Do(func() {
		sp.mu.Lock()
		if sp.err == nil {
			sp.err = cause
		}
		sp.mu.Unlock()
		sp.a.Reset(code)
		sp.b.Reset(code)
	})
}

// Done is closed when both directions are done.
func (sp *Splicer) Done() <-chan struct{} { return sp.done }

// Stats returns the bytes copied so far.
func (sp *Splicer) Stats() SpliceStats {
	return SpliceStats{Up: sp.ctr.Up.Load(), Down: sp.ctr.Down.Load()}
}

// Wait waits until both directions are done and returns the byte counts
// and the first failure (nil after a clean end both ways).
func (sp *Splicer) Wait() (SpliceStats, error) {
	<-sp.done
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.Stats(), sp.err
}

// peeker is a stream that can wait for data without consuming it.
type peeker interface {
	Peek(p []byte) (int, error)
}

// stopNotifier is a stream that says when its peer stops reading it
// (links' QUIC streams).
type stopNotifier interface {
	OnStopSending(f func(error)) (stop func() bool)
}

// copy copies one direction: up reads a and writes b, down the reverse.
func (sp *Splicer) copy(dir int, size int) {
	src, dst, n, peek := sp.a, sp.b, &sp.ctr.Up, sp.peek[:1]
	if dir == down {
		src, dst, n, peek = sp.b, sp.a, &sp.ctr.Down, sp.peek[1:]
	}
	defer func() {
		if sp.running.Add(-1) == 0 {
			sp.unwatch()
			close(sp.done)
			if sp.onDone != nil {
				sp.onDone(sp.Wait())
			}
		}
	}()
	// An idle direction holds no large buffer: the buffer is taken only
	// while data keeps coming and given back as soon as a read comes back
	// short. A source that can peek (links' QUIC streams) is waited on
	// without any buffer; any other is read into a small buffer of the
	// direction's own until a read fills it.
	pk, canPeek := src.(peeker)
	var small []byte
	if !canPeek {
		small = make([]byte, IdleSpliceBuffer)
	}
	big := newSpliceBuf(size)
	defer big.release()
	writes := &sp.writes[dir]
	stall := sp.bounds.Stall > 0
	// The reader of dst stopping (STOP_SENDING) ends the direction at
	// once, as a write would find it, rather than after whatever the
	// source still sends: waiting for data, the direction stayed until
	// HalfClosed or for good, with its circuit counted at this relay
	// after both ends were gone.
	var stopped atomic.Pointer[error]
	if sn, ok := dst.(stopNotifier); ok {
		defer sn.OnStopSending(func(err error) {
			stopped.Store(&err)
			if isGracefulStop(err) {
				src.CloseRead(CloseNormal) // wakes the Peek or Read below
				return
			}
			sp.fail("write", err)
		})()
	}
	for {
		if canPeek && !big.held() {
			// A failed Peek fails the Read below the same way.
			_, _ = pk.Peek(peek)
			big.take()
		}
		buf := small
		if big.held() {
			buf = big.bytes()
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			writes.Add(1)
			if stall && !sp.watched.Load() {
				sp.arm()
			}
			nw, werr := dst.Write(buf[:nr])
			writes.Add(1)
			n.Add(int64(nw))
			if werr != nil {
				if isGracefulStop(werr) {
					sp.endedCleanly(dir)
					src.CloseRead(CloseNormal)
					return
				}
				sp.fail("write", werr)
				return
			}
		}
		switch {
		case rerr == io.EOF:
			sp.endedCleanly(dir)
			_ = dst.CloseWrite()
			return
		case rerr != nil:
			if err := stopped.Load(); err != nil {
				if isGracefulStop(*err) {
					sp.endedCleanly(dir)
					// dst's write side was stopped, and QUIC keeps the
					// stream (and the credit of the link it came on)
					// until its writer takes note: a Write that fails
					// on it, Close or a reset.
					_ = dst.CloseWrite()
				}
				return
			}
			sp.fail("read", rerr)
			return
		case nr == len(buf) && !big.held():
			big.take() // busy: read in large chunks
		case nr < len(buf)/2 && big.held():
			big.release() // drained: wait without the large buffer
		}
	}
}

// arm starts the watchdog unless it runs.
func (sp *Splicer) arm() {
	if !sp.watched.CompareAndSwap(false, true) {
		return
	}
	sp.wd.mu.Lock()
	defer sp.wd.mu.Unlock()
	sp.startLocked()
}

// startLocked starts the watchdog's timer (watched is set).
func (sp *Splicer) startLocked() {
	if sp.wd.over || sp.wd.timer != nil {
		return
	}
	sp.wd.seen = [2]uint64{noSeen, noSeen}
	sp.wd.timer = time.AfterFunc(sp.wd.every, sp.watch)
}

// unwatch stops the watchdog for good: the splice is done.
func (sp *Splicer) unwatch() {
	sp.wd.mu.Lock()
	defer sp.wd.mu.Unlock()
	sp.wd.over = true
	if sp.wd.timer != nil {
		sp.wd.timer.Stop()
		sp.wd.timer = nil
	}
}

// watch is the watchdog: it ends the splice when a write made no progress
// for Stall, or when half-closed, the remaining direction wrote nothing
// for HalfClosed; it looks again after every while a write is in progress
// or the splice is half-closed, and pauses otherwise.
func (sp *Splicer) watch() {
	wd := &sp.wd
	wd.mu.Lock()
	defer wd.mu.Unlock()
	if wd.over {
		return
	}
	now := time.Now()
	remaining := -1 // the direction bounded by HalfClosed
	if h := sp.half.Load(); h != 0 && sp.bounds.HalfClosed > 0 {
		remaining = int(2 - h)
	}
	busy := remaining >= 0
	for dir := range 2 {
		w := sp.writes[dir].Load()
		if w != wd.seen[dir] {
			wd.seen[dir], wd.since[dir] = w, now
		}
		writing := w&1 == 1
		switch {
		case writing && sp.bounds.Stall > 0:
			busy = true
			if now.Sub(wd.since[dir]) >= sp.bounds.Stall {
				sp.stalled("write", fmt.Errorf("%w: the reader made no progress for %v", ErrStalled, sp.bounds.Stall))
				return
			}
		case !writing && dir == remaining:
			quiet := wd.since[dir]
			if h := time.Unix(0, sp.halfAt.Load()); h.After(quiet) {
				quiet = h
			}
			if now.Sub(quiet) >= sp.bounds.HalfClosed {
				sp.stalled("read", fmt.Errorf("%w: half-closed and silent for %v", ErrStalled, sp.bounds.HalfClosed))
				return
			}
		}
	}
	if busy {
		wd.timer.Reset(wd.every)
		return
	}
	// Pause. A write that started, or a half-close that came, after the
	// loads above may have seen watched still set and not armed: look
	// again after clearing it.
	wd.timer = nil
	sp.watched.Store(false)
	again := sp.half.Load() != 0 && sp.bounds.HalfClosed > 0
	for dir := range 2 {
		again = again || sp.writes[dir].Load()&1 == 1
	}
	if again && sp.watched.CompareAndSwap(false, true) {
		sp.startLocked()
	}
}

// stalled ends the splice because it ran into a bound.
func (sp *Splicer) stalled(op string, err error) {
	sp.reset(atHop(CloseTimeout, sp.bounds.Hop), fmt.Errorf("circuit: splice %s: %w", op, err))
}

// IdleSpliceBuffer is the per-direction buffer a splice reads into while
// its circuit is idle, when the source stream cannot peek.
const IdleSpliceBuffer = 1 << 10

// spliceBuf is a splice direction's large buffer, taken from the pool only
// while the direction is busy.
type spliceBuf struct {
	size int
	pool *sync.Pool // nil: allocated per take
	p    *[]byte
}

func newSpliceBuf(size int) spliceBuf {
	if size <= 0 {
		size = DefaultSpliceBuffer
	}
	return spliceBuf{size: size, pool: splicePool(size)}
}

func (b *spliceBuf) held() bool    { return b.p != nil }
func (b *spliceBuf) bytes() []byte { return *b.p }

func (b *spliceBuf) take() {
	if b.pool != nil {
		b.p = b.pool.Get().(*[]byte)
		return
	}
	buf := make([]byte, b.size)
	b.p = &buf
}

func (b *spliceBuf) release() {
	if b.p != nil && b.pool != nil {
		b.pool.Put(b.p)
	}
	b.p = nil
}

func (sp *Splicer) fail(op string, err error) {
	code := resetCode(err)
	var re *links.StreamResetError
	if !errors.As(err, &re) { // produced here, not forwarded from further along
		code = atHop(code, sp.bounds.Hop)
	}
	sp.reset(code, fmt.Errorf("circuit: splice %s: %w", op, err))
}

// endedCleanly notes that direction dir ended cleanly: the other
// direction, still open, is bounded by HalfClosed from now.
func (sp *Splicer) endedCleanly(dir int) {
	if f := sp.bounds.OnHalfClose; f != nil {
		f(dir == up)
	}
	if sp.bounds.HalfClosed <= 0 || sp.half.Load() != 0 {
		return
	}
	sp.halfAt.Store(time.Now().UnixNano()) // before half: watch reads them in that order
	if sp.half.CompareAndSwap(0, int32(dir)+1) {
		sp.arm()
	}
}

// isGracefulStop reports whether a write failed because the receiver
// stopped reading with CloseNormal (Close or Refuse at the far end).
func isGracefulStop(err error) bool {
	var re *links.StreamResetError
	return errors.As(err, &re) && re.Remote && re.Code == CloseNormal
}
