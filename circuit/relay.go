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
// bufSize <= 0. Buffers of this size are pooled.
const DefaultSpliceBuffer = 32 << 10

var spliceBufs = sync.Pool{New: func() any {
	b := make([]byte, DefaultSpliceBuffer)
	return &b
}}

// SpliceStats counts the bytes a splice copied each way.
type SpliceStats struct {
	Up   int64 // from a to b (towards the destination)
	Down int64 // from b to a (towards the caller)
}

// SpliceBounds bound the states a peer can leave a splice in. Zero fields
// mean no bound. A splice that runs into one resets both streams with
// CloseTimeout.
type SpliceBounds struct {
	// Stall bounds a write that makes no progress: the reader on that
	// side stopped reading (its flow-control window stays shut).
	Stall time.Duration
	// HalfClosed bounds the silence of the remaining direction once the
	// other one ended cleanly: a half-closed circuit whose other side
	// neither sends nor closes.
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
	halfDone  atomic.Bool // one direction ended cleanly
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
}

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
	go sp.copy(a, b, &sp.ctr.Down, sp.peek[1:], bufSize)
	sp.copy(b, a, &sp.ctr.Up, sp.peek[:1], bufSize)
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
	go sp.copy(b, a, &sp.ctr.Up, sp.peek[:1], bufSize)
	go sp.copy(a, b, &sp.ctr.Down, sp.peek[1:], bufSize)
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
	go sp.copy(b, a, &sp.ctr.Up, sp.peek[:1], bufSize)
	go sp.copy(a, b, &sp.ctr.Down, sp.peek[1:], bufSize)
	return sp
}

// bound applies bounds before the splice starts.
func (sp *Splicer) bound(bounds SpliceBounds) {
	sp.bounds = bounds
	if bounds.Counters != nil {
		sp.ctr = bounds.Counters
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

// copy copies src to dst; peek is the direction's one-byte Peek buffer.
func (sp *Splicer) copy(dst, src links.Stream, n *atomic.Int64, peek []byte, size int) {
	defer func() {
		if sp.running.Add(-1) == 0 {
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
			if sp.bounds.Stall > 0 {
				_ = dst.SetWriteDeadline(time.Now().Add(sp.bounds.Stall))
			}
			nw, werr := dst.Write(buf[:nr])
			n.Add(int64(nw))
			if werr != nil {
				if isGracefulStop(werr) {
					sp.endedCleanly(src)
					src.CloseRead(CloseNormal)
					return
				}
				sp.fail("write", werr)
				return
			}
			if sp.halfDone.Load() && sp.bounds.HalfClosed > 0 {
				_ = src.SetReadDeadline(time.Now().Add(sp.bounds.HalfClosed))
			}
		}
		switch {
		case rerr == io.EOF:
			sp.endedCleanly(src)
			_ = dst.CloseWrite()
			return
		case rerr != nil:
			sp.fail("read", rerr)
			return
		case nr == len(buf) && !big.held():
			big.take() // busy: read in large chunks
		case nr < len(buf)/2 && big.held():
			big.release() // drained: wait without the large buffer
		}
	}
}

// IdleSpliceBuffer is the per-direction buffer a splice reads into while
// its circuit is idle, when the source stream cannot peek.
const IdleSpliceBuffer = 1 << 10

// spliceBuf is a splice direction's large buffer, taken from the pool only
// while the direction is busy.
type spliceBuf struct {
	size int
	p    *[]byte
}

func newSpliceBuf(size int) spliceBuf {
	if size <= 0 {
		size = DefaultSpliceBuffer
	}
	return spliceBuf{size: size}
}

func (b *spliceBuf) held() bool    { return b.p != nil }
func (b *spliceBuf) bytes() []byte { return *b.p }

func (b *spliceBuf) take() {
	if b.size == DefaultSpliceBuffer {
		b.p = spliceBufs.Get().(*[]byte)
		return
	}
	buf := make([]byte, b.size)
	b.p = &buf
}

func (b *spliceBuf) release() {
	if b.p != nil && b.size == DefaultSpliceBuffer {
		spliceBufs.Put(b.p)
	}
	b.p = nil
}

func (sp *Splicer) fail(op string, err error) {
	code := resetCode(err)
	if isTimeout(err) {
		code = CloseTimeout
		if op == "write" {
			err = fmt.Errorf("%w: the reader made no progress for %v: %w", ErrStalled, sp.bounds.Stall, err)
		} else {
			err = fmt.Errorf("%w: half-closed and silent for %v: %w", ErrStalled, sp.bounds.HalfClosed, err)
		}
	}
	var re *links.StreamResetError
	if !errors.As(err, &re) { // produced here, not forwarded from further along
		code = atHop(code, sp.bounds.Hop)
	}
	sp.reset(code, fmt.Errorf("circuit: splice %s: %w", op, err))
}

// endedCleanly notes that the direction reading src ended cleanly: the
// other direction, still open, is bounded by HalfClosed from now.
func (sp *Splicer) endedCleanly(src links.Stream) {
	if f := sp.bounds.OnHalfClose; f != nil {
		f(src == sp.a) // a is the stream from the previous hop: data going up
	}
	if sp.halfDone.Swap(true) || sp.bounds.HalfClosed <= 0 {
		return
	}
	other := sp.a
	if src == sp.a {
		other = sp.b
	}
	_ = other.SetReadDeadline(time.Now().Add(sp.bounds.HalfClosed))
}

// isGracefulStop reports whether a write failed because the receiver
// stopped reading with CloseNormal (Close or Refuse at the far end).
func isGracefulStop(err error) bool {
	var re *links.StreamResetError
	return errors.As(err, &re) && re.Remote && re.Code == CloseNormal
}
