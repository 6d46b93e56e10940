package links

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// creditDelay is the tick of a creditBatcher: a stream whose credit is
// not given back earlier (see ride) is released one to two ticks after
// its accept.
//
// quic-go gives a stream's credit back, with a MAX_STREAMS frame, when the
// stream completes: for a short circuit, when the peer acknowledges this
// side's FIN, which a peer opening circuits one after another does with
// the first packet of its next open. Given back then, every such open
// made this side send a packet of its own (ACK and MAX_STREAMS) ahead of
// its answer and the peer an ACK-only packet for it: two datagrams per
// open on each link of a circuit (TestCreditBatchSavesPackets: 6 per
// serial open against 4), and at a relay the forwarded open could wait
// behind that packet on the shared socket. The tick must be long enough
// that a stream released by it has usually completed, or its frame still
// leaves alone when it does: with opens 5 ms apart (the same test,
// two runs each, load 5) ticks of 5 ms cost 0.04–0.13 datagram per open
// more than ticks of 10 ms, and ticks of 30 ms no fewer than 10 ms. It
// must be short beside the time a peer needs to use up the credit held,
// which creditFlushShare bounds anyway.
const creditDelay = 10 * time.Millisecond

// creditFlushShare: once 1/creditFlushShare of MaxStreams (at most
// creditFlushMax) is held, all of it is given back at once, so that a
// peer opening faster than the ticks does not wait for credit held here
// (1024 streams with the default 4096). The same share is the least
// credit a peer is left: while the streams open on the link and those
// held leave it less, every stream is released at its accept (credit
// back at completion, as without the batcher), so that a peer near its
// limit with long-lived circuits does not wait a tick for each open.
const creditFlushShare = 4

// creditFlushMax bounds a flush: quic-go queues one MAX_STREAMS frame for
// each stream it deletes and closes the connection when too many control
// frames wait to be sent (16384 in v0.65.0).
const creditFlushMax = 1024

// creditBatcher gives back the stream credit of the circuit streams a
// peer opened on one link (quic.Config.RequireStreamCreditRelease is set
// on links). Every stream quicLink.AcceptStream hands out is queued once
// and released once, whichever comes first of:
//   - a Write on a later stream of the link (ride): the frames of the
//     streams that completed usually leave in the packet of that write;
//   - the second tick after its accept, ticks being creditDelay apart
//     while streams wait, together with every stream queued by the tick
//     before (two generations: young, queued since the last tick, and
//     old, released at the next);
//   - 1/creditFlushShare of MaxStreams held, or the peer left less than
//     that (all released at once);
//   - the link's end (stop).
//
// A stream still open when released keeps its credit until it completes,
// as without the batcher. The queue is bounded by MaxStreams, as every
// stream in it holds a credit of the peer's. The timer is armed only
// while streams wait; stop ends it.
type creditBatcher struct {
	delay time.Duration
	flush int // waiting streams that are released at once
	max   int // the streams the peer may open (MaxStreams)

	// first is the ID of the oldest stream held (noneHeld: none), read
	// without mu by ride.
	first atomic.Int64

	mu      sync.Mutex
	young   []*quic.Stream
	old     []*quic.Stream
	timer   *time.Timer
	armed   bool
	stopped bool
}

// newCreditBatcher returns a batcher for a link whose peer may open
// maxStreams circuit streams.
func newCreditBatcher(maxStreams int, delay time.Duration) *creditBatcher {
	b := &creditBatcher{delay: delay, max: maxStreams,
		flush: max(1, min(maxStreams/creditFlushShare, creditFlushMax))}
	b.first.Store(noneHeld)
	return b
}

// add queues the credit of s for release; open is the number of streams
// open on the link (both directions: it only makes a flush come early).
// A nil batcher (credit given back by quic-go on completion) does
// nothing.
func (b *creditBatcher) add(s *quic.Stream, open int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		s.ReleaseStreamCredit()
		return
	}
	b.young = append(b.young, s)
	defer b.count()
	if held := len(b.young) + len(b.old); held >= b.flush || open+held > b.max-b.flush {
		b.old = releaseAll(b.old)
		b.young = releaseAll(b.young)
		return
	}
	if !b.armed {
		b.armed = true
		if b.timer == nil {
			b.timer = time.AfterFunc(b.delay, b.tick)
		} else {
			b.timer.Reset(b.delay)
		}
	}
}

// tick releases the old generation and ages the young one.
func (b *creditBatcher) tick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.old = releaseAll(b.old)
	b.old, b.young = b.young, b.old
	b.count()
	b.armed = len(b.old) > 0
	if b.armed {
		b.timer.Reset(b.delay)
	}
}

// stop ends the timer and releases what waits (the connection is
// closing: this only keeps each stream's release exactly once). Streams
// added later are released at once. Once stop returns no tick runs but
// one that finds the batcher stopped.
func (b *creditBatcher) stop() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.old = releaseAll(b.old)
	b.young = releaseAll(b.young)
	b.count()
}

// ride releases the streams queued before the stream id, just written
// to: the MAX_STREAMS frames of those that completed usually leave in the
// packet that carries the write (quic-go packs what is queued when its
// sending goroutine wakes), instead of in one of their own at the next
// tick. The streams are queued in the order of their IDs (the order
// quic-go hands them out), so those before id are a prefix of old, then
// of young. A peer opening circuits one after another completes each
// (acknowledges this side's FIN) with the first packet of the next, so
// the answer on the next carries its credit. It costs an atomic load when
// nothing before id waits; a nil batcher does nothing. (That streams are
// queued in ID order holds while one goroutine accepts a link's streams,
// as node's dispatch does; out of order, ride would only release less,
// and the ticks the rest.)
func (b *creditBatcher) ride(id quic.StreamID) {
	if b != nil && int64(id) > b.first.Load() {
		b.rideSlow(id)
	}
}

// rideSlow is ride's work once a stream before id waits.
func (b *creditBatcher) rideSlow(id quic.StreamID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.old = releaseBefore(b.old, id)
	if len(b.old) == 0 {
		b.young = releaseBefore(b.young, id)
	}
	b.count()
}

// noneHeld is first when no stream is held: above every stream ID.
const noneHeld = 1 << 62

// count publishes the ID of the oldest stream held.
func (b *creditBatcher) count() {
	switch {
	case len(b.old) > 0:
		b.first.Store(int64(b.old[0].StreamID()))
	case len(b.young) > 0:
		b.first.Store(int64(b.young[0].StreamID()))
	default:
		b.first.Store(noneHeld)
	}
}

// waiting is the number of streams whose credit is held.
func (b *creditBatcher) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.young) + len(b.old)
}

// releaseBefore releases the streams of q, sorted by ID, whose ID is
// below id and returns the rest, moved to the front of q's array.
func releaseBefore(q []*quic.Stream, id quic.StreamID) []*quic.Stream {
	n := 0
	for n < len(q) && q[n].StreamID() < id {
		n++
	}
	if n == 0 {
		return q
	}
	releaseAll(q[:n])
	rest := copy(q, q[n:])
	clear(q[rest:])
	return q[:rest]
}

// releaseAll releases the credit of every stream in q and returns q
// emptied (its array kept, the references cleared).
func releaseAll(q []*quic.Stream) []*quic.Stream {
	for i, s := range q {
		s.ReleaseStreamCredit()
		q[i] = nil
	}
	return q[:0]
}
