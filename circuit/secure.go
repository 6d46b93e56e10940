package circuit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/internal/growread"
	"github.com/circuitmesh/circuitmesh/links"
)

// FlagSealed: the payload is an end-to-end handshake followed by sealed
// records (package seal), bound to this header's flags, dest, source and
// service.
const FlagSealed Flags = 1 << 2

// FlagLargeRecords (with FlagSealed): the source reads sealed records of
// up to seal.MaxLargeData bytes. The destination says in its
// authenticated reply whether it saw the flag, and whether it reads them
// too; each end sends records larger than seal.MaxData only to an end
// that stated it reads them. Nodes that predate the flag ignore it, as
// they do every unknown flag, and state nothing.
const FlagLargeRecords Flags = 1 << 5

// FlagResendsEarly (with FlagSealed and FlagEarly): the source keeps the
// early data its one-message first message carries and sends it again,
// as the first records after the handshake, when the destination's
// authenticated reply states that it took the handshake but not that
// data (seal.Responder.DropEarly). A destination does that for a first
// message stamped within its replay window of its start, which the
// process before it may have taken: a replay into a restarted node then
// delivers nothing. Nodes that predate the flag ignore it.
const FlagResendsEarly Flags = 1 << 6

// End-to-end security sentinels (see package seal).
var (
	// ErrIntegrity: a record was tampered with, replayed, reordered or
	// dropped, or the circuit ended without its end-of-stream record.
	ErrIntegrity = seal.ErrIntegrity
	// ErrAuth: the other end could not prove the name it claims.
	ErrAuth = seal.ErrAuth
	// ErrForgedRetry: the destination states, authenticated, that it took
	// a first flight of this open which a relay answered with a Retry
	// result header of its own; the open is not made again, so nothing
	// is delivered twice. It wraps ErrIntegrity.
	ErrForgedRetry = seal.ErrForgedRetry
)

// Security is what a source needs to seal a circuit: its own keys and, for
// the one-message (IK) handshake, the destination's verified key record.
// Without Peer the full (XX) handshake is used.
type Security struct {
	Keys *seal.Keys
	Peer *seal.KeyRecord
	// OnRetry, when set, is called when the destination refuses the
	// one-message handshake with code Retry (e.g. to forget Peer); on a
	// DialEarlySecure conn without Reopen that refusal surfaces from Read
	// or Write. A
	// refused resumed handshake does not call it: its session is dropped
	// instead (seal.Initiator.Refused) and Peer stays good.
	OnRetry func()
	// OnPeer, when set, is called with the destination's verified key
	// record once the handshake completed (e.g. to cache it).
	OnPeer func(*seal.KeyRecord)
	// Fresh, when set, never resumes a session: the handshake is IK with
	// Peer, else XX. A retry after a refused resumed handshake sets it.
	Fresh bool
	// Reopen, when set, lets a DialEarlySecure conn whose first flight
	// the destination refuses with Retry open again by itself, at most
	// maxReopens times, on the stream Reopen returns (the refused one is
	// reset). A flight that carried early bytes is followed by the full
	// handshake, whose first message names the refused flights
	// (seal.Keys.InitiateAfter), the early bytes sent again after its
	// third message: the Retry is a result header, which a relay may
	// forge after the destination took the flight, and a destination
	// that took one states it, so that the conn fails with
	// ErrForgedRetry instead of delivering the bytes twice (a destination
	// that predates the names does not read them). A flight without early
	// bytes is followed by the next handshake down, as a Dial takes it (a
	// fresh one-message handshake after a refused resumption, else the
	// full one). The caller's Reads and Writes see only the circuit
	// accepted.
	//
	// Reopen runs within the handshake, which no Read's or Write's
	// deadline bounds (each of those returns at its own): its ctx is
	// cancelled when the conn is closed or reset, and Reopen bounds its
	// wait by a timeout of its own too.
	Reopen func(ctx context.Context) (links.Stream, error)
}

// maxReopens is how many times an early conn opens again after Retry, as
// many as a Dial's retries (node.openSealed).
const maxReopens = 2

// EarlyWait is how long the first Read of an early sealed circuit waits for
// a Write before it sends the open without data: long enough for a client
// that speaks first (HTTP, TLS) to have its first bytes carried by the open,
// short enough not to matter to one that waits for the server.
const EarlyWait = 5 * time.Millisecond

// IsRetry reports whether err is a refusal of the one-message handshake:
// the caller should forget the destination's key and open again.
func IsRetry(err error) bool { return errors.Is(err, seal.ErrRetry) }

// secure is the end-to-end state of a sealed Conn.
type secure struct {
	mu     sync.Mutex // the handshake; held while completing it
	ini    *seal.Initiator
	retry  func()
	onPeer func(*seal.KeyRecord)
	hdr    []byte        // open header not yet sent (early dial)
	sent   chan struct{} // closed once the first flight is sent (early dial)
	result *frameReader  // result header still to read
	reply  msgReader     // handshake reply being read
	done   atomic.Bool
	err    error // sticky handshake failure, set under mu
	sess   *seal.Session

	// At the source: the handshake runs once, in its own goroutine
	// (Conn.runHandshake); Reads and Writes wait for hsDone, each under
	// its own deadline (Conn.waitHandshake). Until it ends the conn's
	// deadlines are not set on the stream (held) and a change of one
	// closes dlSet, which Conn.dlMu guards, and replaces it.
	hsOnce sync.Once
	hsDone chan struct{}
	held   atomic.Bool
	dlSet  chan struct{}
	// ctx is what Reopen's wait for a stream runs under: cancelled when
	// the conn is closed or reset, or the handshake ended.
	ctx    context.Context
	cancel context.CancelFunc

	// At the destination: the source resumed a session.
	sessionResumed bool

	// An early source that opens again after Retry (Security.Reopen).
	reopen   func(context.Context) (links.Stream, error)
	reopens  int
	stream   *reopenable // the conn's stream
	keys     *seal.Keys
	peer     *seal.KeyRecord
	prologue []byte
	dest     string
	sentHdr  []byte // the open header, for the next flight
	// abandoned: the first flights with early bytes refused with Retry
	// so far, which the next one names (Security.Reopen).
	abandoned [][]byte
	early     []byte // early bytes the first flight carried, until accepted
	resend    bool   // the handshake under way did not carry early: send it after

	// Read side, under Conn.readMu.
	rd    msgReader
	plain []byte // decrypted data not yet returned
	eof   bool
	// Write side, under Conn.writeMu: the unsent tail of a sealed record.
	wpend []byte
}

// recordPool holds buffers for one record of up to seal.MaxData bytes of
// data, largeRecordPool for one of up to seal.MaxLargeData, which only
// circuits whose other end reads them send: a circuit that never sees a
// large record never takes a large buffer.
var (
	recordPool      = sync.Pool{New: func() any { b := make([]byte, seal.MaxRecord); return &b }}
	largeRecordPool = sync.Pool{New: func() any { b := make([]byte, seal.MaxLargeRecord); return &b }}
)

// getRecord is a pooled buffer for a record of up to n bytes (length
// prefix included), n at most seal.MaxLargeRecord.
func getRecord(n int) *[]byte {
	if n <= seal.MaxRecord {
		return recordPool.Get().(*[]byte)
	}
	return largeRecordPool.Get().(*[]byte)
}

// putRecord gives back a buffer of getRecord.
func putRecord(bp *[]byte) {
	if len(*bp) > seal.MaxRecord {
		largeRecordPool.Put(bp)
	} else {
		recordPool.Put(bp)
	}
}

// msgReader reads one u16-length-prefixed message, keeping partial
// progress across calls (a read interrupted by a deadline resumes).
type msgReader struct {
	hdr  [2]byte
	nh   int
	buf  *[]byte // from getRecord when pooled
	n    int
	pool bool
	// max bounds a pooled message: 0 for seal.MaxRecord; more (up to
	// seal.MaxLargeRecord) at an end that reads large records.
	max int
}

// fill returns the message body once complete; the next call starts a new
// message. A stream that ends inside a message gives io.ErrUnexpectedEOF,
// one that ends before it io.EOF.
func (m *msgReader) fill(r io.Reader) ([]byte, error) {
	for m.nh < 2 {
		k, err := r.Read(m.hdr[m.nh:])
		m.nh += k
		if err != nil && (err != io.EOF || m.nh < 2) {
			if err == io.EOF && m.nh > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	want := int(binary.BigEndian.Uint16(m.hdr[:]))
	if m.pool {
		if limit := max(m.max, seal.MaxRecord); want > limit {
			return nil, fmt.Errorf("%w: record of %d bytes exceeds %d", ErrIntegrity, want, limit)
		}
	}
	if m.buf != nil && want > len(*m.buf) && m.pool && m.n == 0 {
		putRecord(m.buf) // a small buffer kept for a large record
		m.buf = nil
	}
	if m.buf == nil {
		if m.pool {
			m.buf = getRecord(want)
		} else {
			b := make([]byte, want)
			m.buf = &b
		}
	}
	if want > len(*m.buf) {
		return nil, fmt.Errorf("%w: record of %d bytes exceeds %d", ErrIntegrity, want, len(*m.buf))
	}
	for m.n < want {
		k, err := r.Read((*m.buf)[m.n:want])
		m.n += k
		if err != nil && (err != io.EOF || m.n < want) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	body := (*m.buf)[:want]
	m.nh, m.n = 0, 0
	return body, nil
}

// release returns a pooled buffer once its body is no longer used.
func (m *msgReader) release() {
	if m.pool && m.buf != nil && m.nh == 0 && m.n == 0 {
		putRecord(m.buf)
		m.buf = nil
	}
}

// ReadHandshake reads one framed handshake message from s (the destination
// reads the source's first message after the open header). The caller
// bounds the time with a read deadline. It holds memory for the bytes
// that came, not for the length the prefix claims (up to 64 KiB): the
// buffer starts at 512 bytes and doubles as they arrive.
func ReadHandshake(s io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		return nil, fmt.Errorf("circuit: read handshake: %w", err)
	}
	want := int(binary.BigEndian.Uint16(hdr[:]))
	b, err := growread.Read(s, want, 512)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("circuit: read handshake: %w", err)
	}
	return b, nil
}

// DialSecure is Dial for a sealed circuit: the open header and the first
// handshake message go in one write, and it returns once the destination
// accepted and proved its name (one round trip; the full handshake's third
// message is sent before returning). Failures of the handshake wrap ErrAuth.
func DialSecure(ctx context.Context, s links.Stream, o *Open, local Addr, sec Security) (*Conn, error) {
	c, err := DialEarlySecure(s, o, local, sec)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { s.Reset(CloseCancelled) })
	err = c.awaitHandshake()
	if !stop() {
		c.Reset(CloseCancelled)
		return nil, dialError(&Open{Dest: o.Dest, Service: o.Service}, ctx.Err())
	}
	if err != nil {
		c.Reset(CloseCancelled)
		var re *RefusedError
		if errors.As(err, &re) {
			return nil, re
		}
		return nil, dialError(o, err)
	}
	return c, nil
}

// DialEarlySecure is DialEarly for a sealed circuit. Nothing is sent until
// the first Write (or Read): with the destination's key known (IK), the
// open header, the handshake and up to seal.MaxEarly bytes of that Write
// leave in one flight; the rest waits for the destination's reply.
func DialEarlySecure(s links.Stream, o *Open, local Addr, sec Security) (*Conn, error) {
	hdr := openFor(o, FlagEarly|FlagSealed)
	initiate := sec.Keys.Initiate
	if sec.Fresh {
		initiate = sec.Keys.InitiateFresh
	}
	if hdr.Flags &^= FlagLargeRecords; sec.Keys.StatesLarge() {
		hdr.Flags |= FlagLargeRecords
	}
	if hdr.Flags &^= FlagResendsEarly; sec.Reopen != nil {
		hdr.Flags |= FlagResendsEarly // this conn keeps its early bytes
	}
	// The prologue binds the flags, so they are final here.
	prologue := seal.Prologue(hdr.Dest, hdr.Source, hdr.Service, uint16(hdr.Flags))
	ini, err := initiate(prologue, hdr.Dest, sec.Peer)
	if err != nil {
		s.Reset(CloseInternal)
		return nil, dialError(hdr, err)
	}
	b, err := hdr.AppendTo(make([]byte, 0, 512))
	if err != nil {
		s.Reset(resetCode(err))
		return nil, dialError(hdr, err)
	}
	var rs *reopenable
	if sec.Reopen != nil {
		rs = &reopenable{cur: s}
		s = rs
	}
	c := newConn(s, local, Addr{hdr.Dest, hdr.Service}, nil)
	c.path.Store(nil)
	c.sec = &secure{ini: ini, retry: sec.OnRetry, onPeer: sec.OnPeer, hdr: b, sent: make(chan struct{}), result: newFrameReader(kindResult, 0),
		hsDone: make(chan struct{}), dlSet: make(chan struct{})}
	c.sec.held.Store(true)
	c.sec.rd.pool = true
	if rs != nil {
		c.sec.ctx, c.sec.cancel = context.WithCancel(context.Background())
		c.sec.reopen, c.sec.stream = sec.Reopen, rs
		c.sec.keys, c.sec.peer, c.sec.prologue, c.sec.dest = sec.Keys, sec.Peer, prologue, hdr.Dest
		c.sec.sentHdr = bytes.Clone(b)
	}
	return c, nil
}

// PeerRecord is the other end's verified key record on a sealed circuit
// whose handshake completed (nil otherwise): at a source, what to cache for
// the next one-message handshake.
func (c *Conn) PeerRecord() *seal.KeyRecord {
	if c.sec == nil || !c.sec.done.Load() || c.sec.ini == nil {
		return nil
	}
	return c.sec.ini.PeerRecord()
}

// Sealed reports whether the circuit's payload is end-to-end sealed.
func (c *Conn) Sealed() bool { return c.sec != nil }

// SessionResumed reports whether a sealed circuit opened by resuming an
// end-to-end session between its two ends (a seal session ticket, no DH)
// rather than with the ends' static keys.
func (c *Conn) SessionResumed() bool {
	switch {
	case c.sec == nil:
		return false
	case c.sec.ini != nil:
		return c.sec.ini.Resumed()
	default:
		return c.sec.sessionResumed
	}
}

// firstFlightLocked sends the open header and first handshake message, with
// as much of early as the handshake allows, and returns how much of early
// it carried. sec.mu held.
func (c *Conn) firstFlightLocked(early []byte) (int, error) {
	if c.sec.err != nil {
		return 0, c.sec.errFor("write") // the handshake ended without it
	}
	if c.sec.hdr == nil {
		return 0, nil
	}
	if c.sec.ini.Full() {
		early = nil
	}
	early = early[:min(len(early), seal.MaxEarly)]
	b, err := c.sec.ini.First(c.sec.hdr, early, time.Now())
	if err != nil {
		return 0, err
	}
	c.sec.hdr = nil
	close(c.sec.sent)
	if c.sec.reopen != nil && len(early) > 0 {
		c.sec.early = bytes.Clone(early) // the caller may reuse its buffer
	}
	if _, err := c.s.Write(b); err != nil {
		c.sec.err = c.opError("write", err)
		c.s.Reset(resetCode(err))
		return 0, c.sec.err
	}
	c.out.Add(int64(len(early)))
	return len(early), nil
}

// writeWaits reports whether a Write of a few bytes would wait for the
// other end: a sealed source whose handshake is under way (first flight
// sent) or is the full one, which carries no early data.
func (c *Conn) writeWaits() bool {
	if c.sec == nil || c.sec.done.Load() {
		return false
	}
	c.sec.mu.Lock()
	defer c.sec.mu.Unlock()
	return c.sec.hdr == nil || c.sec.ini.Full()
}

// awaitHandshake waits for the source's handshake (first flight if not
// sent, result header, reply, and the full handshake's third message)
// for a Read, bounded by the read deadline.
func (c *Conn) awaitHandshake() error { return c.waitHandshake("read", &c.readDL) }

// awaitHandshakeForWrite is awaitHandshake for a Write (or CloseWrite),
// bounded by the write deadline.
func (c *Conn) awaitHandshakeForWrite() error { return c.waitHandshake("write", &c.writeDL) }

// waitHandshake starts the source's handshake if nobody did and waits
// for its end, or until the deadline in dl (the conn's read or write
// deadline, which may change meanwhile) passes, which fails this call
// with os.ErrDeadlineExceeded and leaves the handshake running for the
// next one. The handshake itself runs once, in its own goroutine
// (runHandshake), and no caller's deadline bounds it: only its own
// end, a reset, or the conn's Close. op names the caller's operation in
// the errors it returns.
func (c *Conn) waitHandshake(op string, dl *atomic.Int64) error {
	sec := c.sec
	if sec.done.Load() {
		return nil
	}
	if sec.sent != nil {
		// A reader that comes first (the usual order when both directions
		// start together) gives the writer EarlyWait to put its first
		// bytes in the first flight.
		t := time.NewTimer(EarlyWait)
		select {
		case <-sec.sent:
		case <-t.C:
		}
		t.Stop()
	}
	c.startHandshake()
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		c.dlMu.Lock()
		changed, d := sec.dlSet, dl.Load()
		c.dlMu.Unlock()
		select {
		case <-sec.hsDone:
			return sec.errFor(op)
		default:
		}
		if c.closed.Load() {
			return c.opError(op, net.ErrClosed)
		}
		var expired <-chan time.Time
		if d != 0 {
			wait := time.Until(time.Unix(0, d))
			if wait <= 0 {
				return c.opError(op, os.ErrDeadlineExceeded)
			}
			if t == nil {
				t = time.NewTimer(wait)
			} else {
				t.Reset(wait)
			}
			expired = t.C
		}
		select {
		case <-sec.hsDone:
			return sec.errFor(op)
		case <-changed: // a deadline changed, or the conn closed
		case <-expired:
		}
	}
}

// errFor is the handshake's failure (nil if it completed) as the error
// of op: a Write waiting for the handshake reports its failure as a
// write's.
func (sec *secure) errFor(op string) error { return withOp(sec.err, op) }

// withOp is err as the error of op: a *net.OpError another operation
// made (a failure recorded by a read, returned to a Write) is copied
// with op's name; any other err is returned as it is.
func withOp(err error, op string) error {
	if oe, ok := err.(*net.OpError); ok && oe.Op != op {
		cp := *oe
		cp.Op = op
		return &cp
	}
	return err
}

// startHandshake starts the source's handshake in its own goroutine
// (runHandshake) unless it was started.
func (c *Conn) startHandshake() {
	c.sec.hsOnce.Do(func() { go c.runHandshake() })
}

// settleHandshake waits, at most closeFlushTimeout, for the end of a
// source's handshake whose first flight left, so that Close sends the
// end record after the early bytes the destination did not take and
// which go again once it completed: cut short, the circuit lost bytes a
// Write had reported written.
func (c *Conn) settleHandshake() {
	sec := c.sec
	if sec == nil || sec.hsDone == nil || sec.done.Load() {
		return
	}
	if sec.sent != nil {
		select {
		case <-sec.sent:
		default:
			return // nothing left: nothing to deliver
		}
	}
	c.startHandshake()
	t := time.NewTimer(closeFlushTimeout)
	defer t.Stop()
	select {
	case <-sec.hsDone:
	case <-t.C:
	}
}

// runHandshake runs the source's handshake to its end, once. The conn's
// deadlines are held back from the stream meanwhile (secure.held), so
// that its reads and writes end only with the handshake, a reset or
// Close (which sets a past deadline on the stream and cancels a
// Reopen's wait for a stream), then set on the stream before the
// waiters resume.
func (c *Conn) runHandshake() {
	sec := c.sec
	err := c.handshake()
	if sec.cancel != nil {
		sec.cancel()
	}
	c.dlMu.Lock()
	sec.held.Store(false)
	if !c.closed.Load() {
		_ = c.s.SetReadDeadline(unixTime(c.readDL.Load()))
		_ = c.s.SetWriteDeadline(unixTime(c.writeDL.Load()))
	}
	c.dlMu.Unlock()
	sec.mu.Lock()
	if err != nil {
		sec.err = err
	} else {
		sec.done.Store(true)
	}
	sec.mu.Unlock()
	if err == nil && sec.onPeer != nil {
		sec.onPeer(sec.ini.PeerRecord())
	}
	close(sec.hsDone)
}

// unixTime is the time of a deadline stored as Unix nanoseconds, zero
// for none.
func unixTime(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v)
}

// handshake is runHandshake's work: the first flight if not sent, the
// result header (opening again after Retry, Security.Reopen), the reply
// and the full handshake's third message. Only it reads the stream
// until it returns; sec.mu is held for the first flight only, which a
// Write may send instead.
func (c *Conn) handshake() error {
	sec := c.sec
	sec.mu.Lock()
	err := sec.err
	if err == nil {
		if r := c.refused.Load(); r != nil {
			err = r
		}
	}
	if err == nil {
		_, err = c.firstFlightLocked(nil)
	}
	sec.mu.Unlock()
	if err != nil {
		return err
	}
	for sec.result != nil {
		body, err := sec.result.fill(c.s)
		if err != nil && !isHeaderError(err) && err != io.EOF {
			return c.opError("read", err)
		}
		if err == nil && sec.reopen != nil && sec.reopens < maxReopens {
			if res, perr := parseResult(body); perr == nil && res.Code == Retry {
				if err := c.reopenLocked(); err != nil {
					return err
				}
				continue
			}
		}
		sec.result = nil
		if err := c.takeResult(body, err); err != nil {
			if IsRetry(err) && !sec.ini.Refused() && sec.retry != nil {
				sec.retry()
			}
			return err
		}
	}
	body, err := sec.reply.fill(c.s)
	if err != nil {
		if isTimeout(err) || c.closed.Load() {
			return c.opError("read", err)
		}
		code := resetCode(err) // the path's reset passed on, a lost link
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("%w: stream ended during the handshake", ErrAuth)
			code = CloseProtocol
		}
		c.s.Reset(code)
		return c.opError("read", err)
	}
	sess, third, err := sec.ini.Finish(body, nil, time.Now())
	if err != nil {
		c.s.Reset(CloseProtocol)
		return c.opError("read", err)
	}
	if len(third) > 0 {
		if _, err := c.s.Write(third); err != nil {
			// The destination proved itself and the source broke no
			// rule: a reset from the path passes its code on, a lost
			// link is CloseLinkLost.
			c.s.Reset(resetCode(err))
			return c.opError("write", err)
		}
	}
	sec.sess = sess
	if sec.ini.EarlyDropped() {
		sec.resend = true
	}
	if sec.resend && len(sec.early) > 0 {
		if err := c.resendEarlyLocked(); err != nil {
			return err
		}
	}
	sec.early = nil
	return nil
}

// reopenLocked opens an early circuit the destination refused with Retry
// again on a new stream (Security.Reopen) and sends its first flight.
// After a flight with early bytes it takes the full handshake, whose
// first message names the refused flights (seal.Keys.InitiateAfter), the
// early bytes following its third message (resendEarlyLocked); after one
// without, the next handshake down. Called by the handshake's
// goroutine; nobody else reads or writes the stream before the handshake
// completes.
func (c *Conn) reopenLocked() error {
	sec := c.sec
	sec.reopens++
	if !sec.ini.Refused() {
		sec.peer = nil // the destination refused the key: take the full handshake
		if sec.retry != nil {
			sec.retry()
		}
	}
	ns, err := sec.reopen(sec.ctx)
	if err != nil {
		c.s.Reset(CloseCancelled)
		return c.opError("read", fmt.Errorf("open again after the destination's retry: %w", err))
	}
	var ini *seal.Initiator
	if len(sec.early) > 0 {
		// The refusal is a result header, which a relay may have forged
		// after the destination took the flight and delivered its bytes:
		// the next flight names it, and a destination that took it says
		// so instead of taking the bytes again.
		if f := sec.ini.Flight(); f != nil {
			sec.abandoned = append(sec.abandoned, f)
		}
		ini, err = sec.keys.InitiateAfter(sec.prologue, sec.dest, sec.abandoned)
	} else {
		ini, err = sec.keys.InitiateFresh(sec.prologue, sec.dest, sec.peer)
	}
	if err != nil {
		ns.Reset(CloseInternal)
		c.s.Reset(CloseCancelled)
		return c.opError("read", err)
	}
	if err := sec.stream.swap(ns); err != nil {
		return c.opError("read", err)
	}
	sec.ini = ini
	sec.result = newFrameReader(kindResult, 0)
	sec.reply.release()
	sec.reply = msgReader{}
	b, err := ini.First(bytes.Clone(sec.sentHdr), nil, time.Now())
	if err != nil {
		c.s.Reset(CloseInternal)
		return c.opError("write", err)
	}
	sec.resend = true
	if _, err := c.s.Write(b); err != nil {
		c.s.Reset(resetCode(err))
		return c.opError("write", err)
	}
	return nil
}

// resendEarlyLocked sends, once the handshake completed, the early bytes
// the first flight carried that the destination did not take (a full
// handshake taken after a Retry, or a reply stating it dropped them),
// ahead of anything else the conn writes. Called by the handshake's
// goroutine.
func (c *Conn) resendEarlyLocked() error {
	sess, early := c.sec.sess, c.sec.early
	bp := getRecord(2 + min(len(early), sess.MaxSend()) + seal.Overhead)
	defer putRecord(bp)
	for len(early) > 0 {
		chunk := early[:recordSize(len(early), sess.MaxSend())]
		rec, err := sess.Seal((*bp)[:0], seal.RecordData, chunk)
		if err == nil {
			_, err = c.s.Write(rec)
		}
		if err != nil {
			c.s.Reset(resetCode(err))
			return c.opError("write", err)
		}
		early = early[len(chunk):]
	}
	return nil
}

// reopenable is the stream of an early sealed conn that may open again
// after Retry (Security.Reopen): its calls go to the current stream, and
// the deadlines set and a Reset or Close made carry over to the next.
type reopenable struct {
	mu     sync.Mutex
	cur    links.Stream
	rd, wd time.Time
	reset  *uint64 // the code of a Reset made
	closed bool    // Close, CloseWrite or CloseRead made
	// onEnd is what watchEnd arranged (nil: nothing), unwatch ends its
	// watch of cur; swap moves the watch to the new stream.
	onEnd   func(error)
	unwatch func() bool
}

func (r *reopenable) stream() links.Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// swap makes ns the current stream and resets the one before, or resets
// ns if the conn was reset or closed meanwhile.
func (r *reopenable) swap(ns links.Stream) error {
	r.mu.Lock()
	if r.reset != nil || r.closed {
		r.mu.Unlock()
		ns.Reset(CloseCancelled)
		return net.ErrClosed
	}
	old := r.cur
	r.cur = ns
	_ = ns.SetReadDeadline(r.rd)
	_ = ns.SetWriteDeadline(r.wd)
	if r.onEnd != nil {
		r.unwatch()
		r.unwatch = watchEnd(ns, r.onEnd)
	}
	r.mu.Unlock()
	old.Reset(CloseCancelled)
	return nil
}

// watchEnd is the current stream's (see watchEnd), moved to the stream
// a reopen swaps in.
func (r *reopenable) watchEnd(f func(error)) (stop func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onEnd, r.unwatch = f, watchEnd(r.cur, f)
	return func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.onEnd = nil
		return r.unwatch()
	}
}

func (r *reopenable) Read(p []byte) (int, error)  { return r.stream().Read(p) }
func (r *reopenable) Write(p []byte) (int, error) { return r.stream().Write(p) }

// closing records a Close, CloseWrite or CloseRead and returns the
// stream it applies to.
func (r *reopenable) closing() links.Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.cur
}

func (r *reopenable) CloseWrite() error     { return r.closing().CloseWrite() }
func (r *reopenable) CloseRead(code uint64) { r.closing().CloseRead(code) }
func (r *reopenable) Close() error          { return r.closing().Close() }

func (r *reopenable) Reset(code uint64) {
	r.mu.Lock()
	if r.reset == nil {
		r.reset = &code
	}
	s := r.cur
	r.mu.Unlock()
	s.Reset(code)
}

func (r *reopenable) SetDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rd, r.wd = t, t
	return r.cur.SetDeadline(t)
}

func (r *reopenable) SetReadDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rd = t
	return r.cur.SetReadDeadline(t)
}

func (r *reopenable) SetWriteDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wd = t
	return r.cur.SetWriteDeadline(t)
}

// AcceptSecure is Accept for a sealed circuit whose first handshake message
// the destination processed with r (Keys.Respond), so for the one-message
// handshake the source is already authenticated. It writes the Accepted
// result and the reply in one write; for the full handshake it then reads
// the source's third message, bounded by the read deadline the caller set
// on s, and authenticates the source (errors wrap ErrAuth; s is reset).
// A third message that does not authenticate, or a stream that ends
// without it, resets s with CloseProtocol; a read that fails otherwise
// resets it with what the failure was (see thirdReadCode). When r dropped
// the early data (seal.Responder.DropEarly) it reads, bounded the same
// way, the first record, which only the source can make: a replayed
// first message gets no Conn, and s is reset.
func AcceptSecure(s links.Stream, o *Open, local Addr, r *seal.Responder) (*Conn, error) {
	return AcceptSecureWithin(s, o, local, r, 0)
}

// AcceptSecureWithin is AcceptSecure giving a full handshake's third
// message third to arrive, counted from the reply's write, in place of
// the read deadline the caller set on s (third > 0): the destination's
// own work before its reply (its admission, the reply's X25519
// operations, a starved scheduler) is then not taken from the source's
// time. The reply's write has the same window (third > 0): a path that
// takes none of it fails the accept with os.ErrDeadlineExceeded and
// resets s with CloseInternal.
func AcceptSecureWithin(s links.Stream, o *Open, local Addr, r *seal.Responder, third time.Duration) (*Conn, error) {
	fail := func(err error) (*Conn, error) {
		s.Reset(resetCode(err))
		return nil, fmt.Errorf("circuit: accept from %s/%s: %w", o.Source, o.Service, err)
	}
	b, err := (&Result{Code: Accepted, Node: local.Node, Path: o.RecordedPath()}).AppendTo(make([]byte, 0, 256))
	if err != nil {
		return fail(err)
	}
	r.SourceLarge(o.Flags&FlagLargeRecords != 0)
	b, sess, err := r.Reply(b, time.Now())
	if err != nil {
		return fail(err)
	}
	if third > 0 {
		// The reply must leave within the window the third message gets
		// after it: a path that takes nothing of it (no credit from the
		// next hop) would otherwise hold this accept, and what the
		// handshake counts against the source, for as long as the link
		// lasts. (quic-go takes a write of up to 1,452 bytes without
		// credit; a full handshake's reply with a recorded path of long
		// names is larger.) newConn drops the deadline for the circuit.
		_ = s.SetWriteDeadline(time.Now().Add(third))
	}
	if _, err := s.Write(b); err != nil {
		return fail(fmt.Errorf("write the reply: %w", err))
	}
	if sess == nil {
		if third > 0 {
			// The source's work and the path's delay are timed, not
			// this end's own before its reply.
			_ = s.SetReadDeadline(time.Now().Add(third))
		}
		third, err := ReadHandshake(s)
		code := CloseProtocol
		if err != nil {
			code = thirdReadCode(err)
		} else {
			sess, err = r.Finish(third, time.Now())
		}
		if err != nil {
			s.Reset(code)
			return nil, fmt.Errorf("circuit: accept from %s/%s: %w", o.Source, o.Service, err)
		}
	}
	c := keepDeadlines(s, local, Addr{o.Source, o.Service}, o.RecordedPath())
	c.sec = &secure{sess: sess, sessionResumed: r.Resumed()}
	c.sec.done.Store(true)
	c.sec.rd.pool = true
	if e := r.Early(); len(e) > 0 {
		c.sec.plain = append([]byte(nil), e...)
	}
	if r.EarlyDropped() {
		if err := c.awaitResentEarly(third); err != nil {
			return nil, fmt.Errorf("circuit: accept from %s/%s: %w", o.Source, o.Service, err)
		}
	}
	// The Conn starts without deadlines (newConn).
	_ = s.SetDeadline(time.Time{})
	return c, nil
}

// awaitResentEarly reads, within third of now (third > 0; else within the
// read deadline the caller set), the first record of a circuit whose early
// data the destination did not take (seal.Responder.DropEarly): the source
// sends that data again as its first records. The handshake alone proves
// nothing here, as a relay that recorded the first message can replay it;
// only the source, holding the ephemeral key of that message, can make a
// record. A conn that gets none is reset and never reaches the service:
// before, a replayed first flight gave the service an accepted circuit of
// the source that carried nothing.
func (c *Conn) awaitResentEarly(third time.Duration) error {
	if third > 0 {
		_ = c.s.SetReadDeadline(time.Now().Add(third))
	}
	c.readMu.Lock()
	_, err := c.readSealed(nil)
	c.readMu.Unlock()
	if err == io.EOF {
		// The end of the stream before the data it stated it keeps.
		err = c.integrity(fmt.Errorf("%w: circuit ended before the early data sent again", ErrIntegrity))
	}
	if err != nil && !errors.Is(err, ErrIntegrity) { // integrity reset s already
		c.s.Reset(thirdReadCode(err))
	}
	return err
}

// thirdReadCode is the close code a destination resets a circuit with
// when it could not read the full handshake's third message: a protocol
// error only when the source ended its stream without it. The source
// broke no rule when the destination's read deadline ran out first (a
// loaded machine, a path busy with earlier circuits: CloseInternal), a
// link on the path was lost (CloseLinkLost) or the path reset the stream
// (its code, passed on).
func thirdReadCode(err error) uint64 {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return CloseProtocol
	}
	return resetCode(err)
}

// buffered is the payload received and opened that the next Read returns
// without waiting: at a destination, the early data of the open. The
// slice is valid until the next Read.
func (c *Conn) buffered() []byte {
	if c.sec == nil {
		return nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.sec.plain
}

// readSealed reads payload from records. readMu held.
func (c *Conn) readSealed(p []byte) (int, error) {
	if err := c.awaitHandshake(); err != nil {
		return 0, err
	}
	if c.readErr != nil {
		return 0, c.readErr
	}
	sc := c.sec
	for len(sc.plain) == 0 {
		sc.rd.release()
		if sc.eof {
			return 0, io.EOF
		}
		sc.rd.max = sc.sess.MaxRecv() + seal.Overhead
		body, err := sc.rd.fill(c.s)
		if err != nil {
			if errors.Is(err, ErrIntegrity) {
				return 0, c.integrity(err) // a record over the bound
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return 0, c.integrity(fmt.Errorf("%w: circuit ended without its end-of-stream record", ErrIntegrity))
			}
			return 0, c.opError("read", err)
		}
		typ, data, err := sc.sess.Open(body)
		if err != nil {
			return 0, c.integrity(err)
		}
		if typ == seal.RecordEnd {
			sc.eof = true
			continue
		}
		if typ == seal.RecordRefused {
			err := c.takeRefusal(string(data))
			sc.rd.release()
			return 0, err
		}
		sc.plain = data
	}
	n := copy(p, sc.plain)
	sc.plain = sc.plain[n:]
	c.in.Add(int64(n))
	if len(sc.plain) == 0 {
		sc.rd.release()
	}
	return n, nil
}

// integrity makes an integrity failure sticky and aborts the circuit.
func (c *Conn) integrity(err error) error {
	c.readErr = c.opError("read", err)
	broken := c.readErr
	c.broken.Store(&broken)
	c.s.Reset(CloseProtocol)
	return c.readErr
}

// writeSealed writes p as records. writeMu held.
func (c *Conn) writeSealed(p []byte) (int, error) {
	n := 0
	if !c.sec.done.Load() {
		c.sec.mu.Lock()
		k, err := c.firstFlightLocked(p)
		c.sec.mu.Unlock()
		if err != nil {
			return 0, err
		}
		// The handshake goes on at once, not at the next Read or Write:
		// the destination may hold the circuit until it ends (early
		// bytes it dropped come again after it), and a caller that
		// writes and then waits for the service would wait for good.
		c.startHandshake()
		if n = k; n == len(p) {
			return n, nil
		}
		if err := c.awaitHandshakeForWrite(); err != nil {
			return n, err
		}
	}
	if err := c.flushPending(); err != nil {
		return n, err
	}
	limit := c.sec.sess.MaxSend()
	bp := getRecord(2 + min(len(p)-n, limit) + seal.Overhead)
	defer putRecord(bp)
	for n < len(p) {
		chunk := p[n:min(len(p), n+recordSize(len(p)-n, limit))]
		if err := c.writeRecord((*bp)[:0], seal.RecordData, chunk); err != nil {
			return n + len(chunk), err
		}
		n += len(chunk)
		c.out.Add(int64(len(chunk)))
	}
	return n, nil
}

// recordSize is the size of the next record of a Write with n bytes
// left, records of at most limit bytes: n split evenly into as few
// records as limit allows, so that a Write of 64 KiB makes two records of
// 32 KiB rather than one just under 64 KiB and one of 32 bytes.
func recordSize(n, limit int) int {
	k := (n + limit - 1) / limit
	return (n + k - 1) / k
}

// recordData is the most data one record this conn sends may carry:
// seal.MaxData, or more once the handshake completed and the other end
// stated it reads large records.
func (c *Conn) recordData() int {
	if c.sec == nil || !c.sec.done.Load() {
		return seal.MaxData
	}
	return c.sec.sess.MaxSend()
}

// writeRecord seals one record into buf and writes it.
func (c *Conn) writeRecord(buf []byte, typ byte, data []byte) error {
	rec, err := c.sec.sess.Seal(buf, typ, data)
	if err != nil {
		return c.opError("write", err)
	}
	return c.sendRecord(rec)
}

// sendRecord writes a sealed record; the unsent tail of a write cut by a
// deadline is kept for the next write.
func (c *Conn) sendRecord(rec []byte) error {
	k, err := c.s.Write(rec)
	if err != nil {
		c.sec.wpend = append(c.sec.wpend[:0], rec[k:]...)
		return c.opError("write", err)
	}
	return nil
}

func (c *Conn) flushPending() error {
	for len(c.sec.wpend) > 0 {
		k, err := c.s.Write(c.sec.wpend)
		c.sec.wpend = c.sec.wpend[k:]
		if err != nil {
			return c.opError("write", err)
		}
	}
	c.sec.wpend = nil
	return nil
}

// closeWriteSealed sends the end-of-stream record. writeMu held.
func (c *Conn) closeWriteSealed() error {
	if err := c.awaitHandshakeForWrite(); err != nil {
		return err
	}
	if err := c.flushPending(); err != nil {
		return err
	}
	var b [seal.Overhead]byte
	return c.writeRecord(b[:0], seal.RecordEnd, nil)
}

// finAfterEnd sends the stream's FIN once this end's end record was
// written. The other end reads that record as io.EOF, and may answer and
// close before the FIN leaves (when this process runs late): its
// STOP_SENDING with CloseNormal then cancels a FIN it no longer needs,
// which is not a failure of the half-close. Any other failure is returned.
func (c *Conn) finAfterEnd() error {
	if err := c.s.CloseWrite(); !isGracefulStop(err) {
		return err
	}
	return nil
}

// writeDataRecord is Write for data that fits one record and was laid out
// in rec for seal.Session.SealInPlace (seal.RecordHead bytes, then the
// data, capacity for the tag): it is sealed where it lies, saving Write's
// copy into a record buffer. ok is false, and nothing done, when the conn
// is not sealed or its handshake did not complete (its first Write may
// carry the open): the caller then Writes rec[seal.RecordHead:].
func (c *Conn) writeDataRecord(rec []byte) (ok bool, err error) {
	return c.writeInPlace(rec, false)
}

// writeLastRecord is writeDataRecord for the last data this end sends:
// the end-of-stream record follows in the same write, then the stream's
// FIN, as CloseWrite would send them, so that all of it can leave in one
// packet.
func (c *Conn) writeLastRecord(rec []byte) (ok bool, err error) {
	return c.writeInPlace(rec, true)
}

func (c *Conn) writeInPlace(rec []byte, last bool) (ok bool, err error) {
	if c.sec == nil || !c.sec.done.Load() {
		return false, nil
	}
	if err := c.precheck("write", &c.writeDL); err != nil {
		return true, err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.precheck("write", &c.writeDL); err != nil {
		return true, err
	}
	if c.writeClosed.Load() {
		return true, c.opError("write", net.ErrClosed)
	}
	err = c.flushPending()
	if err == nil {
		rec[2] = seal.RecordData
		var sealed []byte
		if sealed, err = c.sec.sess.SealInPlace(rec); err == nil && last {
			sealed, err = c.sec.sess.Seal(sealed, seal.RecordEnd, nil)
		}
		if err != nil {
			return true, c.opError("write", err)
		}
		err = c.sendRecord(sealed)
	}
	if err == nil && last {
		c.writeClosed.Store(true)
		if err = c.s.CloseWrite(); err != nil {
			err = c.opError("close", err)
		}
	}
	if err != nil {
		return true, c.refusalOr(err)
	}
	c.out.Add(int64(len(rec) - seal.RecordHead))
	return true, nil
}

// sealRecord seals plain, a data record's type and then its data, into
// out's memory (capacity for the record) without copying it first, and
// returns the record for writeHeld. ok is false, and nothing done, when
// the conn is not sealed, its handshake did not complete, or another
// write holds the conn: the caller, which holds the circuit's lock, never
// waits for a write that may be blocked on flow control. With ok and no
// error, the conn's write lock stays held until the caller releases it
// (releaseWrite) once it wrote the record, so nothing is written between
// the record taking its nonce and its going out.
func (c *Conn) sealRecord(plain, out []byte) (rec []byte, ok bool, err error) {
	if c.sec == nil || !c.sec.done.Load() {
		return nil, false, nil
	}
	if err := c.precheck("write", &c.writeDL); err != nil {
		return nil, true, err
	}
	if !c.writeMu.TryLock() {
		return nil, false, nil
	}
	if rec, err = c.sealHeld(plain, out); err != nil {
		c.writeMu.Unlock()
		return nil, true, err
	}
	return rec, true, nil
}

// sealHeld is sealRecord for a caller that holds the write lock already,
// taken by a sealRecord whose record is not written yet: records sealed
// one after the other this way are written in the order they were sealed
// (writeHeld), the lock held until the last is (releaseWrite).
func (c *Conn) sealHeld(plain, out []byte) ([]byte, error) {
	if err := c.precheck("write", &c.writeDL); err != nil {
		return nil, err
	}
	if c.writeClosed.Load() {
		return nil, c.opError("write", net.ErrClosed)
	}
	rec, err := c.sec.sess.SealTo(out, plain)
	if err != nil {
		return nil, c.opError("write", err)
	}
	return rec, nil
}

// writeHeld writes a record sealRecord or sealHeld sealed, whose payload
// is n bytes, and keeps the write lock.
func (c *Conn) writeHeld(rec []byte, n int) error {
	err := c.precheck("write", &c.writeDL)
	if err == nil {
		err = c.flushPending()
	}
	if err == nil {
		err = c.sendRecord(rec)
	}
	if err != nil {
		return c.refusalOr(err)
	}
	c.out.Add(int64(n))
	return nil
}

// releaseWrite releases the write lock sealRecord took.
func (c *Conn) releaseWrite() { c.writeMu.Unlock() }

// readBuffered copies into b payload a sealed conn already decrypted, and
// returns how much: 0, without blocking, when it holds none.
func (c *Conn) readBuffered(b []byte) (n int) {
	c.consumeBuffered(func(plain []byte) int {
		n = copy(b, plain)
		return n
	})
	return n
}

// consumeBuffered hands take the payload a sealed conn already decrypted
// and consumes the bytes take reports it used, from the start: without
// blocking, and only while no Read is in progress.
func (c *Conn) consumeBuffered(take func(plain []byte) (used int)) {
	if c.sec == nil {
		return
	}
	// Called under the circuit's lock: never wait for a Read in
	// progress (a refusal being read holds readMu for up to a second).
	if !c.readMu.TryLock() {
		return
	}
	defer c.readMu.Unlock()
	if !c.sec.done.Load() || c.readErr != nil { // done first: until then the handshake's goroutine writes readErr
		return
	}
	sc := c.sec
	n := take(sc.plain)
	sc.plain = sc.plain[n:]
	c.in.Add(int64(n))
	if len(sc.plain) == 0 {
		sc.rd.release()
	}
}

// takeFrames hands t, one by one, the whole frames of the resumable
// framing that lead the payload a sealed conn already decrypted and that
// a run takes (runFrame: pings, pongs, acknowledgements and data frames),
// consuming each frame t takes, until t takes one no more or says the
// run ends, and returns how many it consumed: 0, without blocking, when
// it holds none. t is called with the conn's read lock held. A record
// full of small frames is then taken in one pass instead of one Read or
// more each.
func (c *Conn) takeFrames(t frameTaker) (frames int) {
	c.consumeBuffered(func(plain []byte) int {
		used := 0
		for more := true; more; {
			n := runFrame(plain[used:])
			if n == 0 {
				break
			}
			var took bool
			if took, more = t.takeFrame(plain[used : used+n]); !took {
				break
			}
			used += n
			frames++
		}
		return used
	})
	return frames
}

// takeBuffered hands over the payload a sealed conn already decrypted when
// it is the whole rest of a pooled record, at most n bytes, and t agrees
// to the size of its buffer: the caller then owns the record's buffer
// (getRecord's, to give back with putRecord once read) and the conn reads
// its next record into another. Otherwise nil: nothing changes. t is
// asked with the conn's read lock held.
func (c *Conn) takeBuffered(n int, t recordTaker) ([]byte, *[]byte) {
	if c.sec == nil {
		return nil, nil
	}
	// Called under the circuit's lock: never wait for a Read in
	// progress (a refusal being read holds readMu for up to a second).
	if !c.readMu.TryLock() {
		return nil, nil
	}
	defer c.readMu.Unlock()
	sc, m := c.sec, &c.sec.rd
	if !sc.done.Load() || c.readErr != nil || len(sc.plain) == 0 || len(sc.plain) > n ||
		!m.pool || m.buf == nil || m.nh != 0 || m.n != 0 {
		return nil, nil
	}
	// The payload must end where the record buffer does (early data at a
	// destination, for one, lies elsewhere).
	buf, p := *m.buf, sc.plain
	if &buf[:cap(buf)][cap(buf)-1] != &p[:cap(p)][cap(p)-1] || !t.takeRecord(len(buf)) {
		return nil, nil
	}
	bp := m.buf
	sc.plain, m.buf = nil, nil
	c.in.Add(int64(len(p)))
	return p, bp
}
