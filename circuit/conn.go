package circuit

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// Conn is one end of a circuit. It implements net.Conn over a links.Stream:
// Read and Write may be called from several goroutines, deadlines behave as
// for a TCP connection, Close unblocks pending calls with net.ErrClosed.
// Errors from Read and Write are *net.OpError values that unwrap to the
// cause (os.ErrDeadlineExceeded, net.ErrClosed, links.ErrStreamReset with a
// *links.StreamResetError carrying the close-reason code, links.ErrLinkLost),
// except io.EOF, returned as is, and a refusal, returned as *RefusedError.
// A Write after the other end's clean close fails with its reset
// (CloseNormal), which also matches net.ErrClosed, as on a Resumable.
type Conn struct {
	s             links.Stream
	local, remote Addr

	readMu  sync.Mutex   // one reader of s at a time
	pending *frameReader // result header still to read (DialEarly); under readMu
	early   atomic.Bool  // pending != nil
	readErr error        // sticky protocol failure or refusal; under readMu

	writeMu sync.Mutex // one writer of s at a time

	dlMu        sync.Mutex // orders deadline changes against Close
	readDL      atomic.Int64
	writeDL     atomic.Int64
	closed      atomic.Bool
	aborted     atomic.Pointer[ResetError] // set by Abort before closed
	closing     atomic.Bool                // a Close has started
	writeClosed atomic.Bool
	// cut: the last Write ran into its deadline, so what this end sent
	// stops short of what its application meant to send; a Write that
	// completes, or a CloseWrite, clears it. Close then resets the
	// circuit rather than end it cleanly.
	cut atomic.Bool

	sec *secure // end-to-end layer of a sealed circuit, else nil

	refused atomic.Pointer[RefusedError]
	// broken is the read error for which this end reset a sealed
	// circuit (a record failed its integrity check): a Write the reset
	// ends returns it (as a write's), so that whichever side of the conn
	// sees the end first learns it was tampering, not "reset by this end".
	broken  atomic.Pointer[error]
	path    atomic.Pointer[[]string]
	in, out atomic.Int64

	// stopped is closed once the other end stopped reading (see Done);
	// stopErr is why, when it was not a clean end. Made by Done.
	stopOnce sync.Once
	stopped  chan struct{}
	stopErr  atomic.Pointer[error]
	unwatch  func() bool // ends Done's watches; under dlMu
}

var _ net.Conn = (*Conn)(nil)

func newConn(s links.Stream, local, remote Addr, path []string) *Conn {
	c := keepDeadlines(s, local, remote, path)
	// The Conn starts without deadlines; drop any the caller set on s
	// (e.g. to bound the header read), so both agree.
	_ = s.SetDeadline(time.Time{})
	return c
}

// keepDeadlines is newConn leaving the deadlines set on s, for a caller
// that reads on with them before it hands the Conn out (and drops them).
func keepDeadlines(s links.Stream, local, remote Addr, path []string) *Conn {
	c := &Conn{s: s, local: local, remote: remote}
	c.path.Store(&path)
	return c
}

// Path returns the path the result reported, when the open asked for
// FlagRecordPath: the names the relays recorded in the open header as it
// crossed them (node puts the source first and the destination last). It
// is what the relays reported, not a proof of the route taken: a relay can
// change the names before its own. On a DialEarly conn it is nil until the
// result arrived.
func (c *Conn) Path() []string {
	if p := c.path.Load(); p != nil {
		return append([]string(nil), (*p)...)
	}
	return nil
}

// BytesIn is the number of payload bytes read so far (headers excluded).
func (c *Conn) BytesIn() int64 { return c.in.Load() }

// BytesOut is the number of payload bytes written so far.
func (c *Conn) BytesOut() int64 { return c.out.Load() }

// LocalAddr returns this end's Addr.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the other end's Addr: the destination node and service
// at the caller, the source node and the service at the destination. The
// source is authenticated only on a sealed circuit (AcceptSecure); Accept
// takes it from the open header, a claim as good as the relays on the path
// (see the package's trust model).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Read reads payload bytes. On a DialEarly conn the first Read first waits
// for the result header and returns the *RefusedError if the circuit was
// refused.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.precheck("read", &c.readDL); err != nil {
		return 0, err
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if err := c.precheck("read", &c.readDL); err != nil {
		return 0, err
	}
	if c.sec != nil {
		if len(p) == 0 {
			return 0, c.awaitHandshake()
		}
		return c.readSealed(p)
	}
	if err := c.awaitResultLocked(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.s.Read(p)
	c.in.Add(int64(n))
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

// Write writes payload bytes. On a DialEarly conn, once the stream fails
// because the circuit was refused, Write returns the *RefusedError. On a
// sealed conn refused by Deny, a Write failing while a Read is in
// progress returns the stream reset at once and leaves the refusal to
// that Read (unless it was already read).
func (c *Conn) Write(p []byte) (n int, err error) {
	defer func() { c.cut.Store(err != nil && isTimeout(err)) }()
	if err := c.precheck("write", &c.writeDL); err != nil {
		return 0, err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.precheck("write", &c.writeDL); err != nil {
		return 0, err
	}
	if c.writeClosed.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	if c.sec != nil {
		n, err := c.writeSealed(p)
		return n, c.refusalOr(err)
	}
	n, err = c.s.Write(p)
	c.out.Add(int64(n))
	if err == nil {
		return n, nil
	}
	if c.early.Load() && !c.closed.Load() && !isTimeout(err) {
		// The stream failed: on an early conn the reason may be a refusal
		// whose result header is waiting to be read.
		c.readMu.Lock()
		_ = c.awaitResultLocked()
		c.readMu.Unlock()
		if r := c.refused.Load(); r != nil {
			return n, r
		}
	}
	return n, c.opError("write", err)
}

// precheck fails at once when the conn is closed, refused, or the deadline
// in dl has passed.
func (c *Conn) precheck(op string, dl *atomic.Int64) error {
	if c.closed.Load() {
		return c.opError(op, net.ErrClosed)
	}
	if r := c.refused.Load(); r != nil {
		return r
	}
	if d := dl.Load(); d != 0 && time.Now().UnixNano() >= d {
		return c.opError(op, os.ErrDeadlineExceeded)
	}
	return nil
}

// awaitResultLocked reads the pending result header, if any. readMu held.
func (c *Conn) awaitResultLocked() error {
	if c.readErr != nil {
		return c.readErr
	}
	if c.pending == nil {
		return nil
	}
	body, err := c.pending.fill(c.s)
	if err != nil && !isHeaderError(err) && err != io.EOF {
		return c.opError("read", err) // I/O error: not sticky, Read may retry
	}
	c.pending = nil
	c.early.Store(false)
	return c.takeResult(body, err)
}

// takeResult acts on the result header body read on an early conn (err is
// its read or decoding failure): it records the path, or makes the
// failure or refusal sticky and resets the stream.
func (c *Conn) takeResult(body []byte, err error) error {
	var res *Result
	if err == nil {
		res, err = parseResult(body)
	}
	if err == io.EOF {
		err = fmt.Errorf("%w: stream ended before the result header", ErrMalformedHeader)
	}
	if err != nil {
		c.readErr = c.opError("read", err)
		c.s.Reset(CloseProtocol)
		return c.readErr
	}
	c.path.Store(&res.Path)
	if res.Code != Accepted {
		r := res.Err(c.remote.Node, c.remote.Service).(*RefusedError)
		c.refused.Store(r)
		c.readErr = r
		c.s.Reset(CloseCancelled)
		return r
	}
	return nil
}

// maxRefusalReason bounds the reason Deny sends, in bytes.
const maxRefusalReason = 512

// Deny ends a circuit this end accepted and may not serve after all: its
// source, authenticated only by the full end-to-end handshake, is not
// allowed by the authorization policy. On a sealed circuit the reason goes
// to the caller in a sealed refusal record, so that no relay can forge or
// change it: the caller's Read, and its Write once the circuit ended,
// return a *RefusedError with code Policy from this node carrying it. The
// circuit then ends gracefully in both directions. An unsealed circuit, or
// one whose handshake is not complete, is reset with CloseDenied.
func (c *Conn) Deny(reason string) {
	if c.sec == nil || !c.sec.done.Load() {
		c.Reset(CloseDenied)
		return
	}
	if c.closed.Load() || c.closing.Swap(true) {
		return
	}
	if len(reason) > maxRefusalReason {
		reason = reason[:maxRefusalReason]
	}
	c.writeMu.Lock()
	if !c.writeClosed.Swap(true) {
		_ = c.s.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		if c.flushPending() == nil {
			_ = c.writeRecord(make([]byte, 0, len(reason)+seal.Overhead), seal.RecordRefused, []byte(reason))
		}
	}
	c.writeMu.Unlock()
	c.markClosed()
	_ = c.s.Close()
}

// takeRefusal acts on a refusal record read on a sealed circuit: the
// refusal becomes sticky and the stream is released. readMu held.
func (c *Conn) takeRefusal(reason string) error {
	r := &RefusedError{Code: Policy, Node: c.remote.Node, Dest: c.remote.Node, Service: c.remote.Service,
		Reason: links.PeerText(reason), Authenticated: true}
	c.refused.Store(r)
	c.readErr = r
	c.s.Reset(CloseCancelled)
	return r
}

// awaitRefusal is for a Write on a sealed circuit that failed because the
// other end stopped reading: when that end refused the circuit (Deny), its
// refusal record is waiting to be read, and is read here, with the read
// side bounded by closeFlushTimeout (the refusal and the end of the
// stream were sent together), and by the write deadline. When a Read is in
// progress it is not waited for (it may wait without a deadline): that
// Read surfaces the refusal. It returns the refusal, or nil.
// refusalOr returns, for a failed write's err, the read error for which
// this end reset a sealed circuit (broken), else the refusal awaitRefusal
// finds (not for a timeout), else err. Every write path of a sealed conn
// (Write, and the in-place and held records of the resumable layer) ends
// here, so that none of them reports "reset by this end" for tampering.
func (c *Conn) refusalOr(err error) error {
	if b := c.broken.Load(); err != nil && b != nil {
		return withOp(*b, "write")
	}
	if err != nil && !isTimeout(err) {
		if r := c.awaitRefusal(err); r != nil {
			return r
		}
	}
	return err
}

func (c *Conn) awaitRefusal(werr error) *RefusedError {
	var re *links.StreamResetError
	if c.closed.Load() || !errors.As(werr, &re) || !re.Remote || re.Code != CloseNormal {
		return c.refused.Load()
	}
	bound := time.Now().Add(closeFlushTimeout)
	if d := c.writeDL.Load(); d != 0 {
		if d <= time.Now().UnixNano() {
			return c.refused.Load()
		}
		if t := time.Unix(0, d); t.Before(bound) {
			bound = t
		}
	}
	if sec := c.sec; sec != nil && sec.hsDone != nil && !sec.done.Load() {
		// The source's handshake is under way: its goroutine reads the
		// stream, and records the refusal it finds there.
		t := time.NewTimer(time.Until(bound))
		defer t.Stop()
		select {
		case <-sec.hsDone:
		case <-t.C:
		}
		return c.refused.Load()
	}
	if !c.readMu.TryLock() {
		return c.refused.Load()
	}
	defer c.readMu.Unlock()
	sc := c.sec
	if c.readErr != nil || sc.eof || len(sc.plain) > 0 {
		return c.refused.Load()
	}
	c.dlMu.Lock()
	_ = c.s.SetReadDeadline(bound)
	c.dlMu.Unlock()
	defer func() {
		c.dlMu.Lock()
		if !c.closed.Load() {
			if v := c.readDL.Load(); v != 0 {
				_ = c.s.SetReadDeadline(time.Unix(0, v))
			} else {
				_ = c.s.SetReadDeadline(time.Time{})
			}
		}
		c.dlMu.Unlock()
	}()
	body, err := sc.rd.fill(c.s)
	if err != nil {
		return c.refused.Load()
	}
	typ, data, err := sc.sess.Open(body)
	switch {
	case err != nil:
		sc.rd.release()
		_ = c.integrity(err)
	case typ == seal.RecordRefused:
		_ = c.takeRefusal(string(data))
		sc.rd.release()
	case typ == seal.RecordEnd:
		sc.eof = true
		sc.rd.release()
	default:
		sc.plain = data // for the next Read
	}
	return c.refused.Load()
}

// CloseWrite half-closes the circuit: the other end reads io.EOF after the
// data already written; this end can still read. When the other end
// stopped reading first, it fails with the reset (links.ErrStreamReset),
// except on a sealed circuit whose end record this call wrote and which
// the other end then closed with CloseNormal: that end may have read the
// record as io.EOF and closed before the FIN left.
func (c *Conn) CloseWrite() error {
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	fin := c.s.CloseWrite
	if c.sec != nil {
		c.writeMu.Lock()
		var err error
		if !c.writeClosed.Swap(true) {
			if err = c.closeWriteSealed(); err == nil {
				fin = c.finAfterEnd // this call wrote the end record
			}
		}
		c.writeMu.Unlock()
		if err != nil {
			return withOp(err, "close")
		}
	}
	c.writeClosed.Store(true)
	if err := fin(); err != nil {
		return c.opError("close", err)
	}
	c.cut.Store(false) // the application ended its data here itself
	return nil
}

// Close ends the circuit gracefully from this end (FIN, and stop-sending
// for the other direction) and unblocks pending Reads and Writes, which
// fail with net.ErrClosed. It fails only when the conn was already closed:
// a stream the other end already stopped or reset is simply released.
//
// A circuit whose data this end cut short is reset instead, with
// CloseCancelled: after a Write that ran into its deadline (none
// completed since), with a Write in progress, which Close interrupts, or
// on a sealed circuit whose end record could not be written (a stream
// that took no more within closeFlushTimeout). A FIN would tell the other end
// of an unsealed circuit that the data ended there, whole, and that of a
// sealed one fails the circuit anyway (no end record). And the FIN
// follows data the next hop may take no more of: a relay's splice stays
// blocked writing it, the circuit counted against this node there, until
// the relay's stall bound; a reset ends the circuit at every relay at
// once.
//
// On a sealed circuit whose source's handshake is under way (its first
// flight, with early bytes, sent), Close first waits for the handshake,
// at most a second, so that what was written arrives, with a clean end.
//
// The first Close to start is the one that succeeds, even when another
// Close runs while it is still sending a sealed circuit's end record.
func (c *Conn) Close() error {
	if c.closed.Load() || c.closing.Swap(true) {
		return c.opError("close", net.ErrClosed)
	}
	c.settleHandshake()
	if c.cut.Load() || c.writeInterrupted() || !c.endSealed() {
		c.Reset(CloseCancelled)
		return nil
	}
	c.markClosed()
	_ = c.s.Close()
	return nil
}

// writeInterrupted reports whether a Write is under way on an unsealed
// circuit this end did not half-close: Close interrupts it, so the data
// stops short of what the application meant to send (a sealed circuit's
// endSealed sees it).
func (c *Conn) writeInterrupted() bool {
	if c.sec != nil || c.writeClosed.Load() {
		return false
	}
	if !c.writeMu.TryLock() {
		return true
	}
	c.writeMu.Unlock()
	return false
}

// endSealed sends the end-of-stream record on a sealed circuit whose
// handshake is complete, so that the other end reads a clean io.EOF, unless
// this end already half-closed. The write is bounded by closeFlushTimeout.
// It reports false when the circuit needed the record and did not get it:
// a Write is in progress (the close interrupts it), or the record, or the
// tail of a record a Write left unsent, could not be written.
func (c *Conn) endSealed() bool {
	if c.sec == nil || !c.sec.done.Load() || c.writeClosed.Load() {
		return true
	}
	if !c.writeMu.TryLock() {
		return false
	}
	defer c.writeMu.Unlock()
	if c.writeClosed.Swap(true) {
		return true
	}
	_ = c.s.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	if c.flushPending() != nil {
		return false
	}
	var b [seal.Overhead]byte
	return c.writeRecord(b[:0], seal.RecordEnd, nil) == nil
}

// closeFlushTimeout bounds the end-of-stream record Close sends.
const closeFlushTimeout = time.Second

// Reset aborts the circuit in both directions with a close-reason code
// (CloseCancelled, ...); the other end sees a *links.StreamResetError.
func (c *Conn) Reset(code uint64) {
	if c.markClosedBy(nil) {
		c.s.Reset(code)
	}
}

// Abort is Reset for a cause other than the application (the node the
// circuit belongs to shutting down): the other end sees the same reset,
// and this end's pending and later Reads and Writes fail with a
// *net.OpError wrapping LocalReset(code), which matches the reason's
// sentinel (ErrShuttingDown for CloseShuttingDown) as a reset from the
// path does, instead of net.ErrClosed. It does nothing to a closed conn.
func (c *Conn) Abort(code uint64) {
	if c.markClosedBy(LocalReset(code)) {
		c.s.Reset(code)
	}
}

// Done is closed once the other end, or a relay on the path, stopped
// reading the circuit: after its end of stream (Err is nil) or resetting
// it (Err is why), or once the link under the circuit is lost (Err wraps
// links.ErrLinkLost), half-closed or not. A copy loop blocked on another
// connection learns from it that the circuit is gone, which its Reads and
// Writes tell only once called. It stays open on a stream that cannot
// tell (not links' QUIC streams) and once this end closed the circuit.
func (c *Conn) Done() <-chan struct{} {
	c.stopOnce.Do(func() {
		c.stopped = make(chan struct{})
		var once sync.Once
		end := func(err error) {
			once.Do(func() {
				if !isGracefulStop(err) {
					err = c.opError("write", err)
					c.stopErr.Store(&err)
				}
				close(c.stopped)
			})
		}
		c.dlMu.Lock()
		defer c.dlMu.Unlock()
		if !c.closed.Load() {
			c.unwatch = watchEnd(c.s, end)
		}
	})
	return c.stopped
}

// endWatcher is a stream that says when its peer stops reading it or its
// link is lost, as watchEnd does (a reopenable stream).
type endWatcher interface {
	watchEnd(f func(error)) (stop func() bool)
}

// linkNotifier is a stream that says when its link is lost (links' QUIC
// streams).
type linkNotifier interface {
	OnLinkLost(f func(error)) (stop func() bool)
}

// watchEnd arranges for f to run when the other end stops reading s
// (OnStopSending) and when s's link is lost (OnLinkLost), where s can
// tell; stop ends both watches.
func watchEnd(s links.Stream, f func(error)) (stop func() bool) {
	if ew, ok := s.(endWatcher); ok {
		return ew.watchEnd(f)
	}
	stops := make([]func() bool, 0, 2)
	if sn, ok := s.(stopNotifier); ok {
		stops = append(stops, sn.OnStopSending(f))
	}
	if ln, ok := s.(linkNotifier); ok {
		stops = append(stops, ln.OnLinkLost(f))
	}
	return func() bool {
		stopped := len(stops) > 0
		for _, stop := range stops {
			stopped = stop() && stopped
		}
		return stopped
	}
}

// Err is nil until Done is closed and when the other end stopped reading
// after its end of stream; after a reset it is the error a Write returns.
func (c *Conn) Err() error {
	if err := c.stopErr.Load(); err != nil {
		return *err
	}
	return nil
}

// markClosed flags the conn closed and interrupts pending calls. It reports
// whether this call closed it.
func (c *Conn) markClosed() bool { return c.markClosedBy(nil) }

// markClosedBy is markClosed recording, when not nil, the reset that
// Reads and Writes report from then on.
func (c *Conn) markClosedBy(reset *ResetError) bool {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.closed.Load() {
		return false
	}
	if reset != nil {
		c.aborted.Store(reset) // before closed: opError sees both
	}
	if c.closed.Swap(true) {
		return false
	}
	if c.unwatch != nil {
		c.unwatch() // the link holds the watch Done arranged until then
	}
	past := time.Unix(1, 0)
	_ = c.s.SetReadDeadline(past)
	_ = c.s.SetWriteDeadline(past)
	if c.sec != nil && c.sec.held.Load() {
		close(c.sec.dlSet) // a Read or Write waiting for the handshake ends
		c.sec.dlSet = make(chan struct{})
	}
	if c.sec != nil && c.sec.cancel != nil {
		c.sec.cancel() // and a reopen's wait for a stream (Security.Reopen)
	}
	return true
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline; a zero t means none. Pending and
// future Reads fail with an error matching os.ErrDeadlineExceeded once it
// passes.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.readDL, t, c.s.SetReadDeadline)
}

// SetWriteDeadline sets the write deadline; a zero t means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.writeDL, t, c.s.SetWriteDeadline)
}

func (c *Conn) setDeadline(dl *atomic.Int64, t time.Time, set func(time.Time) error) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if c.closed.Load() {
		return c.opError("set deadline", net.ErrClosed)
	}
	var v int64
	if !t.IsZero() {
		v = t.UnixNano()
	}
	dl.Store(v)
	if c.sec != nil && c.sec.held.Load() {
		// The source's handshake is under way and no caller's deadline
		// bounds its reads and writes: the Reads and Writes waiting for
		// it (waitHandshake) take the new deadline; it is set on the
		// stream when the handshake ends.
		close(c.sec.dlSet)
		c.sec.dlSet = make(chan struct{})
		return nil
	}
	if err := set(t); err != nil {
		return c.opError("set deadline", err)
	}
	return nil
}

func (c *Conn) opError(op string, err error) error {
	switch {
	case c.closed.Load():
		err = net.ErrClosed
		if a := c.aborted.Load(); a != nil && (op == "read" || op == "write") {
			err = a
		}
	case isTimeout(err):
		err = os.ErrDeadlineExceeded
	default:
		err = asResetError(err)
	}
	return &net.OpError{Op: op, Net: Network, Source: c.local, Addr: c.remote, Err: err}
}

// isTimeout reports whether err is a deadline's. A link that QUIC ended
// at its idle timeout (a peer gone silent) is lost, not timed out, though
// quic-go's error for it says Timeout(): a resumable circuit resumes from
// a lost link and ends on a deadline.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	if errors.Is(err, links.ErrLinkLost) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
