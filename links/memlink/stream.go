package memlink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

var (
	errStreamClosed = fmt.Errorf("memlink stream closed: %w", net.ErrClosed)
	errWriteClosed  = fmt.Errorf("memlink stream: write after CloseWrite: %w", net.ErrClosed)
)

// streamPair is the shared state of one stream: a bounded byte queue per
// direction and both ends. One mutex guards it all; no goroutines.
type streamPair struct {
	buffer int

	mu   sync.Mutex
	wake chan struct{} // closed on any change; made on demand
	dir  [2]direction  // dir[i] carries data written by end[i]
	end  [2]stream
}

// direction is the data in flight one way plus the signals about it.
type direction struct {
	data     []byte // unread data is data[off:]
	off      int
	fin      bool   // the writer's FIN reached the reader
	stopped  bool   // the reader's STOP_SENDING reached the writer
	stopCode uint64 // with this code
}

// stream is one end of a streamPair; it implements links.Stream.
type stream struct {
	p        *streamPair
	side     int
	ep       *endpoint
	incoming bool // opened by the peer

	// Guarded by p.mu.
	closed      bool                    // Close called
	writeClosed bool                    // CloseWrite called
	readStopped bool                    // CloseRead called
	stopCode    uint64                  // its code
	eofRead     bool                    // Read returned io.EOF
	reset       *links.StreamResetError // the reset as this end sees it
	lost        error                   // the link went down
	released    bool                    // ep no longer counts it
	rdl, wdl    time.Time
}

var _ links.Stream = (*stream)(nil)

func newStreamPair(opener, acceptor *endpoint, buffer int) (local, remote *stream) {
	p := &streamPair{buffer: buffer}
	p.end[0] = stream{p: p, side: 0, ep: opener}
	p.end[1] = stream{p: p, side: 1, ep: acceptor, incoming: true}
	return &p.end[0], &p.end[1]
}

func (s *stream) other() *stream  { return &s.p.end[1-s.side] }
func (s *stream) out() *direction { return &s.p.dir[s.side] }
func (s *stream) in() *direction  { return &s.p.dir[1-s.side] }
func (s *stream) severed() bool   { return s.ep.conn.severed.Load() }
func (s *stream) String() string  { return fmt.Sprintf("stream %p on %v", s.p, s.ep) }
func (p *streamPair) broadcast() {
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// wait releases p.mu until the next change or the deadline, then retakes it.
func (p *streamPair) wait(deadline time.Time) {
	if p.wake == nil {
		p.wake = make(chan struct{})
	}
	ch := p.wake
	p.mu.Unlock()
	if deadline.IsZero() {
		<-ch
	} else {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
	p.mu.Lock()
}

// unlock releases p.mu and then tells the endpoints about ends that are
// now finished, so that no two locks are ever held together.
func (p *streamPair) unlock() {
	var done [2]*stream
	for i := range p.end {
		s := &p.end[i]
		if !s.released && s.finished() {
			s.released = true
			done[i] = s
		}
	}
	p.mu.Unlock()
	for _, s := range done {
		if s != nil {
			s.ep.release(s)
		}
	}
}

// finished reports whether this end no longer counts as open.
func (s *stream) finished() bool {
	if s.closed || s.lost != nil || s.reset != nil {
		return true
	}
	writeDone := s.writeClosed || s.out().stopped
	readDone := s.eofRead || s.readStopped
	return writeDone && readDone
}

// endErr is the error for any operation on this end. p.mu is held.
func (s *stream) endErr() error {
	switch {
	case s.closed:
		return errStreamClosed
	case s.reset != nil:
		r := *s.reset
		return &r
	case s.lost != nil:
		return s.lost
	}
	return nil
}

func (s *stream) readErr() error {
	if err := s.endErr(); err != nil {
		return err
	}
	if s.readStopped {
		return &links.StreamResetError{Code: s.stopCode}
	}
	return nil
}

func (s *stream) writeErr() error {
	if err := s.endErr(); err != nil {
		return err
	}
	switch {
	case s.writeClosed:
		return errWriteClosed
	case s.out().stopped:
		return &links.StreamResetError{Code: s.out().stopCode, Remote: true}
	}
	return nil
}

func expired(deadline time.Time) bool {
	return !deadline.IsZero() && !time.Now().Before(deadline)
}

// Read reads data the peer wrote; io.EOF after the peer's CloseWrite.
func (s *stream) Read(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.unlock()
	for {
		if err := s.readErr(); err != nil {
			return 0, err
		}
		d := s.in()
		if d.off < len(d.data) {
			if len(b) == 0 {
				return 0, nil
			}
			n := copy(b, d.data[d.off:])
			d.off += n
			if d.off == len(d.data) {
				d.data, d.off = d.data[:0], 0
			}
			p.broadcast()
			return n, nil
		}
		if d.fin {
			s.eofRead = true
			return 0, io.EOF
		}
		if expired(s.rdl) {
			return 0, os.ErrDeadlineExceeded
		}
		if len(b) == 0 {
			return 0, nil
		}
		p.wait(s.rdl)
	}
}

// Write writes all of b, blocking while the stream's buffer towards the
// peer is full (and while the link is severed).
func (s *stream) Write(b []byte) (int, error) {
	p := s.p
	p.mu.Lock()
	defer p.unlock()
	n := 0
	for {
		if err := s.writeErr(); err != nil {
			return n, err
		}
		if expired(s.wdl) {
			return n, os.ErrDeadlineExceeded
		}
		if n == len(b) {
			return n, nil
		}
		d := s.out()
		if space := p.buffer - (len(d.data) - d.off); space > 0 && !s.severed() {
			k := min(space, len(b)-n)
			if d.off > 0 && len(d.data)+k > cap(d.data) {
				d.data = d.data[:copy(d.data, d.data[d.off:])]
				d.off = 0
			}
			d.data = append(d.data, b[n:n+k]...)
			n += k
			p.broadcast()
			continue
		}
		p.wait(s.wdl)
	}
}

// CloseWrite sends FIN after the data already written.
func (s *stream) CloseWrite() error {
	p := s.p
	p.mu.Lock()
	defer p.unlock()
	if err := s.writeErr(); err != nil && !errors.Is(err, errWriteClosed) {
		return err
	}
	s.closeWrite()
	return nil
}

// closeWrite sends FIN. p.mu is held.
func (s *stream) closeWrite() {
	if s.writeClosed {
		return
	}
	s.writeClosed = true
	if !s.severed() {
		s.out().fin = true
	}
	s.p.broadcast()
}

// CloseRead discards unread data and tells the peer to stop sending: its
// Writes fail with a *links.StreamResetError{Code: code, Remote: true}.
func (s *stream) CloseRead(code uint64) {
	p := s.p
	p.mu.Lock()
	defer p.unlock()
	s.closeRead(code)
}

// closeRead sends STOP_SENDING. p.mu is held.
func (s *stream) closeRead(code uint64) {
	if s.readStopped || s.reset != nil || s.lost != nil {
		return
	}
	s.readStopped, s.stopCode = true, code
	d := s.in()
	d.data, d.off = nil, 0
	if !s.severed() {
		d.stopped, d.stopCode = true, code
	}
	s.p.broadcast()
}

// Reset aborts both directions: the peer's Reads and Writes fail with a
// *links.StreamResetError{Code: code, Remote: true}, ours with Remote false.
func (s *stream) Reset(code uint64) {
	p := s.p
	p.mu.Lock()
	defer p.unlock()
	if s.reset != nil || s.lost != nil {
		return
	}
	s.reset = &links.StreamResetError{Code: code}
	if o := s.other(); !s.severed() && o.reset == nil && o.lost == nil {
		o.reset = &links.StreamResetError{Code: code, Remote: true}
	}
	p.dir[0] = direction{}
	p.dir[1] = direction{}
	p.broadcast()
}

// Close is CloseWrite plus CloseRead(0); pending and later calls on this
// end fail with an error wrapping net.ErrClosed.
func (s *stream) Close() error {
	p := s.p
	p.mu.Lock()
	defer p.unlock()
	if s.closed {
		return nil
	}
	if s.reset == nil && s.lost == nil {
		s.closeWrite()
		s.closeRead(0)
	}
	s.closed = true
	p.broadcast()
	return nil
}

// lose fails this end because its link went down.
func (s *stream) lose(err error) {
	p := s.p
	p.mu.Lock()
	if s.lost == nil {
		s.lost = err
		d := s.in()
		d.data, d.off = nil, 0
		s.released = true // the endpoint already dropped it
		p.broadcast()
	}
	p.unlock()
}

func (s *stream) SetDeadline(t time.Time) error {
	return s.setDeadlines(t, t, true, true)
}

func (s *stream) SetReadDeadline(t time.Time) error {
	return s.setDeadlines(t, time.Time{}, true, false)
}

func (s *stream) SetWriteDeadline(t time.Time) error {
	return s.setDeadlines(time.Time{}, t, false, true)
}

func (s *stream) setDeadlines(r, w time.Time, setR, setW bool) error {
	p := s.p
	p.mu.Lock()
	if setR {
		s.rdl = r
	}
	if setW {
		s.wdl = w
	}
	p.broadcast()
	p.mu.Unlock()
	return nil
}
