package links

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// quicStream adapts a *quic.Stream to Stream. Read and Write add no
// allocation on the success path: errors are mapped only when they occur.
type quicStream struct {
	s    *quic.Stream
	link *quicLink
	// credit is the link's batcher for a stream the peer opened (nil for
	// one this side opened, or without a batcher): a Write gives back
	// the credit of the streams accepted before this one after it.
	credit *creditBatcher
	// done holds doneRead|doneWrite; the link's open-stream count drops
	// when both are set.
	done atomic.Uint32
	// inbound: the peer opened the stream. marks (see markRead): an
	// inbound stream that ends read from and never named carried no
	// open, and counts against the peer's StreamAborts.
	inbound bool
	marks   atomic.Uint32
	// got counts the bytes the reader took; reading the Read and Peek
	// calls in progress; watched is set while the stream waits in the
	// link's queue or the reclaim pass's watch list (see reclaim.go).
	got     atomic.Int64
	reading atomic.Int32
	watched atomic.Bool
	// source is the key of whom the stream's circuit counts against, as
	// SetSource named it (0: not named); neighbour and entry the keys
	// of the neighbour it came from and of the entry behind it, as
	// SetNeighbour named them (0: not named).
	source    atomic.Uint64
	neighbour atomic.Uint64
	entry     atomic.Uint64
	// rmu is held by Read and Peek, and by the reclaim pass while it looks
	// at what waits unread; dmu guards the reader's deadline, which that
	// look borrows.
	rmu sync.Mutex
	// cmu makes Reset's two cancels one step for CloseWrite and
	// CloseRead: a writer woken by Reset's write side that closes the
	// stream (as a circuit's splice does on a write error) must not send
	// its own code to the peer before Reset's read side sends Reset's.
	cmu          sync.Mutex
	dmu          sync.Mutex
	readDeadline time.Time
	looking      bool
	// Owned by the link's reclaim pass: got when the reader last made
	// progress, since when it has not and the pass's lateness then, the
	// most the stream may hold, when
	// it was last seen holding too little to matter, and its place in the
	// pass's heap of counted streams (-1: not counted) and on its watch
	// list (-1: not on it), and the source it is counted against.
	mark      int64
	since     time.Time
	sinceLate time.Duration
	bound     uint64
	idleAt    time.Time
	hidx      int
	widx      int
	src       SourceKey
	// Also the pass's: what the stream was last measured holding unread
	// and counted against its source's, neighbour's and entry's holds
	// (held, against hsrc, hnb and hent), and got then.
	held    uint64
	hsrc    SourceKey
	hnb     SourceKey
	hent    SourceKey
	heldGot int64
}

// SetSource names whom a stream's circuit counts against: the link's
// reclaim of stalled streams resets those of the source holding the most
// first (see reclaim.go). Naming a stream the peer opened also tells the
// link it carried an open: one that ends read from and never named counts
// against the peer's budget (QUICConfig.StreamAborts). Streams never
// named count against one unnamed source. A stream may be named again
// (once its source is proven, say); a
// stream already counted as stalled moves to the new key the next time
// the reclaim examines it. It does nothing for streams of other
// transports, and allocates nothing.
func SetSource(s Stream, k SourceKey) {
	if q, ok := s.(*quicStream); ok {
		q.source.Store(uint64(k))
		if q.inbound && q.marks.Load()&markSettled == 0 && q.marks.Or(markNamed|markSettled)&markSettled == 0 {
			q.link.settled(false)
		}
	}
}

// marks: markRead once a Read or Peek was made; markNamed once SetSource
// named the stream; markSettled once an inbound stream left the link's
// pending count (named, or ended).
const (
	markRead uint32 = 1 << iota
	markNamed
	markSettled
)

// setMark sets bit in marks; it costs one atomic load once set.
func (s *quicStream) setMark(bit uint32) {
	if s.marks.Load()&bit == 0 {
		s.marks.Or(bit)
	}
}

// SetNeighbour names the neighbour a stream's circuit came from, proven
// by the link it arrived on (the link's peer for a stream the peer
// opened, the previous hop's for a stream a relay opens to the next),
// and its entry: the node behind that neighbour, as the neighbour names
// it (a key as ClaimedSource makes, proven if the neighbour is honest).
// The streams of one neighbour may hold at most half the link window
// unread, whatever sources they name; beyond it those of the entries
// holding the most are reset first (see reclaim.go). A stream not named
// this way counts as its source's own neighbour and entry. It does
// nothing for streams of other transports, and allocates nothing.
func SetNeighbour(s Stream, name string, entry SourceKey) {
	if q, ok := s.(*quicStream); ok {
		q.neighbour.Store(uint64(ProvenSource(name)))
		q.entry.Store(uint64(entry))
	}
}

// sourceKey is the key SetSource gave s, or 0.
func (s *quicStream) sourceKey() SourceKey { return SourceKey(s.source.Load()) }

// neighbourKey and entryKey are the keys SetNeighbour gave s, or its
// source's.
func (s *quicStream) neighbourKey() SourceKey { return s.orSource(&s.neighbour) }
func (s *quicStream) entryKey() SourceKey     { return s.orSource(&s.entry) }

// orSource is the key k holds, or s's source's if none.
func (s *quicStream) orSource(k *atomic.Uint64) SourceKey {
	if k := SourceKey(k.Load()); k != 0 {
		return k
	}
	return s.sourceKey()
}

const (
	doneRead uint32 = 1 << iota
	doneWrite
)

func newQUICStream(l *quicLink, s *quic.Stream, inbound bool) *quicStream {
	l.streams.Add(1)
	qs := &quicStream{s: s, link: l, inbound: inbound, hidx: -1, widx: -1}
	l.opened(qs)
	return qs
}

func (s *quicStream) finish(bits uint32) {
	for {
		old := s.done.Load()
		if old|bits == old {
			return
		}
		if s.done.CompareAndSwap(old, old|bits) {
			if old&doneRead == 0 && bits&doneRead != 0 {
				s.link.ended(s)
			}
			if old|bits == doneRead|doneWrite {
				s.link.streams.Add(-1)
				if s.inbound {
					if m := s.marks.Or(markSettled); m&markSettled == 0 {
						s.link.settled(m&markRead != 0)
					}
				}
			}
			return
		}
	}
}

func (s *quicStream) Read(p []byte) (int, error) {
	s.setMark(markRead)
	s.reading.Add(1)
	s.rmu.Lock()
	n, err := s.s.Read(p)
	s.rmu.Unlock()
	if n > 0 {
		s.got.Add(int64(n))
	}
	s.left()
	if err != nil {
		return n, s.readErr(err)
	}
	return n, nil
}

func (s *quicStream) Write(p []byte) (int, error) {
	n, err := s.s.Write(p)
	// After the write: a frame queued first would leave in a packet of
	// its own ahead of the data, as quic-go sends as soon as it has
	// something to send.
	s.credit.ride(s.s.StreamID())
	if err != nil {
		return n, s.writeErr(err)
	}
	return n, nil
}

// Peek waits until len(p) bytes can be read (or the stream ends or fails)
// and copies them into p without consuming them. A relay's splice peeks
// one byte so that an idle circuit holds no copy buffer.
func (s *quicStream) Peek(p []byte) (int, error) {
	s.setMark(markRead)
	s.reading.Add(1)
	s.rmu.Lock()
	n, err := s.s.Peek(p)
	s.rmu.Unlock()
	s.left()
	if err != nil {
		// The Read that follows returns the same error and does the
		// bookkeeping.
		return n, mapStreamErr(err)
	}
	return n, nil
}

// OnStopSending arranges for f to run, once, in a goroutine of its own,
// when the peer stops reading the stream (STOP_SENDING), with the
// *StreamResetError a Write then returns; the stream's write side is done
// from then on. stop ends the arrangement (false if f already began). A
// relay's splice uses it to end a direction that waits for data nobody
// will read.
func (s *quicStream) OnStopSending(f func(error)) (stop func() bool) {
	ctx := s.s.Context()
	return context.AfterFunc(ctx, func() {
		var se *quic.StreamError
		if errors.As(context.Cause(ctx), &se) && se.Remote {
			s.finish(doneWrite)
			f(mapStreamErr(se))
		}
	})
}

// OnLinkLost arranges for f to run, once, in a goroutine of its own,
// when the stream's link ends (the neighbour lost or gone silent, or
// either side closed the link), with the error a Read or Write then
// returns, which wraps ErrLinkLost. Unlike OnStopSending it still fires
// after CloseWrite. stop ends the arrangement (false if f already
// began); until then it is held by the link, so a caller that watches
// stops once done with the stream.
func (s *quicStream) OnLinkLost(f func(error)) (stop func() bool) {
	ctx := s.link.conn.Context()
	return context.AfterFunc(ctx, func() {
		err := mapStreamErr(context.Cause(ctx))
		if !errors.Is(err, ErrLinkLost) {
			err = fmt.Errorf("stream: %w: %w", ErrLinkLost, err)
		}
		f(err)
	})
}

func (s *quicStream) readErr(err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		s.finish(doneRead)
	}
	if err == io.EOF {
		return io.EOF
	}
	return mapStreamErr(err)
}

func (s *quicStream) writeErr(err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		s.finish(doneWrite)
	}
	return mapStreamErr(err)
}

// mapStreamErr maps quic-go errors onto this package's errors: stream
// resets become *StreamResetError, connection errors wrap ErrLinkLost (the
// quic-go error stays in the chain; the reason text of a close the peer
// sent is cleaned and cut by cleanPeerClose, as in the link's own error),
// deadline errors are unchanged.
//
// It allocates nothing when err is nil (every CloseWrite), EOF or a
// deadline: the target errors.As needs escapes to the heap, so it is
// declared only past those.
func mapStreamErr(err error) error {
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || err == io.EOF {
		return err
	}
	var se *quic.StreamError
	switch {
	case errors.As(err, &se):
		return &StreamResetError{Code: uint64(se.ErrorCode), Remote: se.Remote}
	case isConnErr(err):
		return fmt.Errorf("stream: %w: %w", ErrLinkLost, cleanPeerClose(err))
	}
	return err
}

// isConnErr reports whether err ends the whole QUIC connection: every
// quic-go connection error (and its transport-closed error) unwraps to
// net.ErrClosed.
func isConnErr(err error) bool { return errors.Is(err, ErrClosed) }

func (s *quicStream) CloseWrite() error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.finish(doneWrite)
	err := s.s.Close()
	s.credit.ride(s.s.StreamID()) // an answer that is only a FIN (see Write)
	if err != nil {
		err = s.closeErr(err)
	}
	return mapStreamErr(err)
}

// closeErr is the error of a CloseWrite that failed. quic-go's Close
// reports a write side cancelled before it, locally (Reset) or by the
// peer's STOP_SENDING, as a bare text; its Write reports the cancellation
// itself, with the code and the side, so it is asked (an empty Write
// sends nothing), and the caller gets a *StreamResetError as from Write.
func (s *quicStream) closeErr(err error) error {
	var se *quic.StreamError
	if _, werr := s.s.Write(nil); errors.As(werr, &se) {
		return werr
	}
	return err
}

func (s *quicStream) CloseRead(code uint64) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.finish(doneRead)
	s.s.CancelRead(quic.StreamErrorCode(code))
}

// resetGap, when set (by tests), runs in Reset between cancelling the
// stream's write side and its read side.
var resetGap atomic.Pointer[func()]

func (s *quicStream) Reset(code uint64) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.finish(doneRead | doneWrite)
	s.s.CancelWrite(quic.StreamErrorCode(code))
	if gap := resetGap.Load(); gap != nil {
		(*gap)()
	}
	s.s.CancelRead(quic.StreamErrorCode(code))
}

func (s *quicStream) Close() error {
	err := s.CloseWrite()
	s.CloseRead(0)
	return err
}

func (s *quicStream) SetDeadline(t time.Time) error {
	err := s.SetReadDeadline(t)
	if werr := s.s.SetWriteDeadline(t); err == nil {
		err = werr
	}
	return err
}

func (s *quicStream) SetReadDeadline(t time.Time) error {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.readDeadline = t
	if s.looking {
		return nil // set when the look ends
	}
	return s.s.SetReadDeadline(t)
}

// unread reports whether at least len(buf) bytes wait unread, without
// consuming them and waiting at most lookWait; false when a Read or Peek
// is in progress (then nothing waits).
func (s *quicStream) unread(buf []byte) bool {
	if !s.rmu.TryLock() {
		return false
	}
	defer s.rmu.Unlock()
	s.dmu.Lock()
	s.looking = true
	_ = s.s.SetReadDeadline(time.Now().Add(lookWait))
	s.dmu.Unlock()
	n, _ := s.s.Peek(buf)
	s.dmu.Lock()
	s.looking = false
	_ = s.s.SetReadDeadline(s.readDeadline)
	s.dmu.Unlock()
	return n == len(buf)
}
func (s *quicStream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }
