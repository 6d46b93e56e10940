package links

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// QUIC application error codes used to close links (docs/PROTOCOL.md).
const (
	codeGoodbye   quic.ApplicationErrorCode = 0x100
	codeRefused   quic.ApplicationErrorCode = 0x101
	codeDuplicate quic.ApplicationErrorCode = 0x102
	codeLost      quic.ApplicationErrorCode = 0x103
	codeProtocol  quic.ApplicationErrorCode = 0x104
	codeBusy      quic.ApplicationErrorCode = 0x105
	codeAborts    quic.ApplicationErrorCode = 0x106
)

// quicLink is one established QUIC link.
type quicLink struct {
	t        *QUICTransport
	conn     *quic.Conn
	ctrl     *quic.Stream
	hello    helloMsg // the peer's hello
	key      linkKey
	pend     *pending // released once adopt is done
	outbound bool
	est      time.Time
	notAfter time.Time // the peer certificate's NotAfter (zero: not enforced)
	// ca is the CA certificate the peer's certificate was last verified
	// under (at the handshake, or by watch since); owned by watch after
	// newQUICLink. changed is the transport's identityChanged when ca
	// was read.
	ca      *x509.Certificate
	changed <-chan struct{}

	routingQ chan ctrlFrame // encoded routing frames, bounded
	// routingBytes is the bytes of the frames in routingQ (added before a
	// frame is queued, taken off when writeLoop takes it), bounded by
	// ControlBytes.
	routingBytes atomic.Int64
	prioQ        chan ctrlFrame // encoded probes and replies, bounded
	writeMu      sync.Mutex     // serialises writes on ctrl

	// credit gives back the credit of the streams the peer opened (nil:
	// quic-go does, as each completes).
	credit *creditBatcher

	streams   atomic.Int64
	cmu       sync.Mutex    // guards queued and gone, handed to the reclaim pass
	queued    []*quicStream // streams whose reader may have left Read (see reclaim.go)
	gone      []*quicStream // streams whose receive side ended
	scan      reclaimScan   // the reclaim pass's state (probeLoop only)
	quality   atomic.Pointer[Quality]
	meter     *qualityMeter // used by probeLoop only
	lastHeard atomic.Int64  // unix nanos of the last frame or packet from the peer
	lastRecv  uint64        // QUIC packets received at the last probe tick (probeLoop only)
	draining  atomic.Bool   // the peer said it is draining (cost pinned to the maximum)
	gaps      gapDetector   // spread of the gaps between the peer's control frames
	byeSeen   atomic.Bool   // the peer ended the link on purpose (goodbye, duplicate)
	// The silence the detector allowed and its own lateness it took off
	// the silence, when it declared the peer dead, when it did, and when
	// the silence it counted began (the peer last heard, or the fresh
	// window a stall of this process gave it) (probeLoop; read after the
	// link is down).
	deadAllow, deadLate time.Duration
	deadAt, deadFrom    time.Time

	// aborts is the peer's bucket of streams ended without an open (set
	// by start, released by watch); unnamed counts the streams the peer
	// opened that were accepted and are not yet named or ended, and
	// unopenedN those that ended without an open on this link; the first
	// that finds the bucket short sets abortOver, abortSeen and
	// abortUntil and closes overAborts, for watch to close the link.
	aborts     atomic.Pointer[abortBudget]
	unnamed    atomic.Int64
	unopenedN  atomic.Int64
	abortOver  atomic.Bool
	abortSeen  atomic.Int64
	abortUntil atomic.Int64
	overAborts chan struct{}

	evMu     sync.Mutex    // serialises Handler calls for this link
	up       bool          // LinkUp was delivered
	started  chan struct{} // closed once start delivered LinkUp
	done     chan struct{}
	downOnce sync.Once
	err      error // set before done is closed
}

func newQUICLink(t *QUICTransport, conn *quic.Conn, ctrl *quic.Stream, peer helloMsg, p *pending) *quicLink {
	l := &quicLink{
		t: t, conn: conn, ctrl: ctrl, hello: peer, key: p.key, pend: p, outbound: p.key.outbound,
		est:      time.Now(),
		routingQ: make(chan ctrlFrame, t.cfg.ControlQueue),
		prioQ:    make(chan ctrlFrame, 16),
		started:  make(chan struct{}),
		done:     make(chan struct{}),

		overAborts: make(chan struct{}),
	}
	l.lastHeard.Store(l.est.UnixNano())
	if t.quicConf.RequireStreamCreditRelease {
		l.credit = newCreditBatcher(t.cfg.MaxStreams, cmp.Or(t.cfg.testCreditDelay, creditDelay))
	}
	if certs := conn.ConnectionState().TLS.PeerCertificates; len(certs) > 0 && !t.cfg.Identity.Insecure {
		l.notAfter = certs[0].NotAfter
		l.changed = t.identityChanged()
		l.ca = t.identity().CA
	}
	// Control frames (probes above all) go ahead of circuit data.
	ctrl.SetPriority(0, false)
	l.meter = newQualityMeter(t.cfg.StaticCost[peer.Node], t.flapped(peer.Node))
	st := conn.ConnectionStats()
	q, _ := l.meter.sample(st.SmoothedRTT, st.MeanDeviation, st.PacketsSent, st.PacketsLost)
	l.quality.Store(&q)
	return l
}

func (l *quicLink) Peer() string         { return l.hello.Node }
func (l *quicLink) PeerRole() Role       { return l.hello.Role }
func (l *quicLink) PeerFeatures() uint64 { return l.hello.Features }

// PeerInstance is the number the peer's transport drew at its start (its
// hello's instance): another number on a link to the same peer is a
// restarted peer. The peer chooses it; it proves nothing.
func (l *quicLink) PeerInstance() uint64   { return l.hello.Instance }
func (l *quicLink) LocalAddr() net.Addr    { return l.conn.LocalAddr() }
func (l *quicLink) RemoteAddr() net.Addr   { return l.conn.RemoteAddr() }
func (l *quicLink) Outbound() bool         { return l.outbound }
func (l *quicLink) Established() time.Time { return l.est }
func (l *quicLink) OpenStreams() int       { return int(l.streams.Load()) }
func (l *quicLink) Quality() Quality       { return *l.quality.Load() }
func (l *quicLink) Done() <-chan struct{}  { return l.done }

// PeerNotAfter is when the peer's certificate expires and the link is
// closed, if the CA certificate that signed it has not expired before
// (zero in insecure mode, where expiry is not enforced).
func (l *quicLink) PeerNotAfter() time.Time { return l.notAfter }

func (l *quicLink) String() string {
	dir := "in"
	if l.outbound {
		dir = "out"
	}
	return fmt.Sprintf("link %s-%s (%s, %s)", l.t.name(), l.hello.Node, dir, l.conn.RemoteAddr())
}

// alive reports whether neither side has ended the link yet.
func (l *quicLink) alive() bool {
	return l.Err() == nil && l.conn.Context().Err() == nil
}

// Err says why the link is down, or nil while it is up.
func (l *quicLink) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

func (l *quicLink) OpenStream(ctx context.Context) (Stream, error) {
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", l.hello.Node, err)
	}
	s, err := l.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, l.opErr("open stream", err)
	}
	return newQUICStream(l, s, false), nil
}

func (l *quicLink) TryOpenStream() (Stream, error) {
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", l.hello.Node, err)
	}
	s, err := l.conn.OpenStream()
	if err != nil {
		if errors.As(err, new(*quic.StreamLimitReachedError)) {
			return nil, fmt.Errorf("open stream to %s: %w", l.hello.Node, ErrNoStreamCredit)
		}
		return nil, l.opErr("open stream", err)
	}
	return newQUICStream(l, s, false), nil
}

func (l *quicLink) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := l.conn.AcceptStream(ctx)
	if err != nil {
		return nil, l.opErr("accept stream", err)
	}
	l.credit.add(s, int(l.streams.Load()))
	if !l.admit() {
		s.CancelRead(0)
		s.CancelWrite(0)
		return nil, fmt.Errorf("accept stream from %s: %w: %w", l.hello.Node, ErrLinkLost, ErrStreamAborts)
	}
	qs := newQUICStream(l, s, true)
	qs.credit = l.credit
	return qs, nil
}

// opErr maps an OpenStream/AcceptStream failure: the link's end wraps
// ErrLinkLost, with a close by the peer cleaned (cleanPeerClose), as the
// link's own error and its streams' are; anything else (the caller's
// context) is kept as is.
func (l *quicLink) opErr(op string, err error) error {
	if isConnErr(err) {
		return fmt.Errorf("%s to %s: %w: %w", op, l.hello.Node, ErrLinkLost, cleanPeerClose(err))
	}
	return fmt.Errorf("%s to %s: %w", op, l.hello.Node, err)
}

func (l *quicLink) SendRouting(payload []byte) error {
	if l.Err() != nil {
		return fmt.Errorf("send routing to %s: %w", l.hello.Node, l.err)
	}
	b, err := appendFrame(nil, frameRouting, payload)
	if err != nil {
		return fmt.Errorf("send routing to %s: %w", l.hello.Node, err)
	}
	return l.queueRouting(b, true)
}

// queueRouting queues the encoded frame b for writeLoop, unless routingQ
// is full or, when bounded, b would take the bytes it holds beyond
// ControlBytes while it holds any: a peer that reads its control stream
// at a trickle would otherwise have the link hold ControlQueue frames of
// up to MaxFrameSize (16 MiB) for as long as it lasts.
func (l *quicLink) queueRouting(b []byte, bounded bool) error {
	n, bound := int64(len(b)), int64(l.t.cfg.ControlBytes)
	for {
		q := l.routingBytes.Load()
		if bounded && q > 0 && q+n > bound {
			return fmt.Errorf("send routing to %s (%d bytes queued, bound %d): %w", l.hello.Node, q, bound, ErrQueueFull)
		}
		if l.routingBytes.CompareAndSwap(q, q+n) {
			break
		}
	}
	select {
	case l.routingQ <- ctrlFrame{b, time.Now()}:
		return nil
	default:
		l.routingBytes.Add(-n)
		return fmt.Errorf("send routing to %s (%d frames queued): %w", l.hello.Node, cap(l.routingQ), ErrQueueFull)
	}
}

// Close sends a goodbye and tears the link down.
func (l *quicLink) Close(reason string) error {
	reason = truncReason(reason)
	l.end(fmt.Errorf("link to %s closed: %s: %w", l.hello.Node, reason, ErrClosed), codeGoodbye, reason, true)
	return nil
}

// down records why the link ended, closes the connection with code and
// reason, and unregisters the link. Only the first call counts.
func (l *quicLink) down(err error, code quic.ApplicationErrorCode, reason string) {
	l.end(err, code, reason, false)
}

// end is down, optionally writing a goodbye frame first.
func (l *quicLink) end(err error, code quic.ApplicationErrorCode, reason string, goodbye bool) {
	l.downOnce.Do(func() {
		l.err = err
		l.t.unregister(l)
		if goodbye {
			l.writeGoodbye(reason)
		}
		_ = l.conn.CloseWithError(code, truncReason(reason))
		l.credit.stop()
		close(l.done)
	})
}

// writeGoodbye writes a goodbye frame, waiting at most 100 ms.
func (l *quicLink) writeGoodbye(reason string) {
	b, err := appendFrame(nil, frameGoodbye, []byte(reason))
	if err != nil {
		return
	}
	deadline := time.Now().Add(100 * time.Millisecond)
	_ = l.ctrl.SetWriteDeadline(deadline)
	// A write in progress (a peer that gives no flow-control credit) ends
	// at the deadline; wait for it by polling rather than on the mutex,
	// because a sleep, unlike a mutex wait, lets the clock of a
	// testing/synctest bubble (package simulate) advance to that deadline.
	for !l.writeMu.TryLock() {
		if !time.Now().Before(deadline) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	// writeLoop sets its own deadline before each write, and may have
	// done so after ours: set ours again.
	_ = l.ctrl.SetWriteDeadline(deadline)
	_, _ = l.ctrl.Write(b)
	l.writeMu.Unlock()
}

// connLost maps the reason the QUIC connection ended to a link error.
func (l *quicLink) connLost(cause error) error {
	var ae *quic.ApplicationError
	if errors.As(cause, &ae) && ae.Remote {
		if ae.ErrorCode == codeGoodbye || ae.ErrorCode == codeDuplicate {
			l.byeSeen.Store(true)
		}
		switch ae.ErrorCode {
		case codeGoodbye:
			return fmt.Errorf("link to %s: %w: peer said goodbye: %s", l.hello.Node, ErrLinkLost, PeerText(ae.ErrorMessage))
		case codeDuplicate:
			return fmt.Errorf("link to %s: %w: closed by peer as a duplicate: %s", l.hello.Node, ErrLinkLost, PeerText(ae.ErrorMessage))
		case codeLost:
			return fmt.Errorf("link to %s: %w: peer declared it dead: %s", l.hello.Node, ErrLinkLost, PeerText(ae.ErrorMessage))
		case codeAborts:
			return fmt.Errorf("link to %s: %w: closed by peer: %w: %s", l.hello.Node, ErrLinkLost, ErrStreamAborts, PeerText(ae.ErrorMessage))
		}
	}
	return fmt.Errorf("link to %s: %w: %w", l.hello.Node, ErrLinkLost, cleanPeerClose(cause))
}

// start runs the link's goroutines and delivers LinkUp. The caller has
// registered the link.
func (l *quicLink) start() {
	l.aborts.Store(l.t.aborts.acquire(l.hello.Node, time.Now()))
	l.evMu.Lock()
	l.t.wg.Add(4)
	go l.readLoop()
	go l.writeLoop()
	go l.probeLoop()
	go l.watch()
	l.up = true
	l.t.cfg.Handler.LinkUp(l)
	l.evMu.Unlock()
	close(l.started)
	if l.t.draining.Load() {
		l.sendDraining()
	}
}

// trustedUntil is when the peer's certificate stops being valid under
// the CA certificate it was last verified under: its NotAfter or that of
// the CA, whichever comes first (zero: not enforced). Only watch calls it
// once the link runs.
func (l *quicLink) trustedUntil() time.Time {
	if l.notAfter.IsZero() || l.ca == nil || !l.ca.NotAfter.Before(l.notAfter) {
		return l.notAfter
	}
	return l.ca.NotAfter
}

// watch ends the link when the connection dies or the peer's certificate,
// or the CA certificate it was verified under, expires, and delivers
// LinkDown once. When the node is given a new identity (SetIdentity),
// and when that deadline comes, it checks the peer's certificate under
// the node's identity then: if it verifies, the link is held to that
// identity's CA from then on (recheck).
func (l *quicLink) watch() {
	defer l.t.wg.Done()
	changed := l.changed
	var tm *time.Timer
	var expiry <-chan time.Time
	until := l.trustedUntil()
	arm := func() {
		if until.IsZero() {
			return
		}
		if tm == nil {
			tm = time.NewTimer(time.Until(until))
			expiry = tm.C
			return
		}
		tm.Reset(time.Until(until))
	}
	arm()
	defer func() {
		if tm != nil {
			tm.Stop()
		}
	}()
	for {
		select {
		case <-l.conn.Context().Done():
			l.down(l.connLost(context.Cause(l.conn.Context())), codeGoodbye, "")
		case <-l.overAborts:
			l.closeAborts()
		case <-expiry:
			if l.recheck(time.Now(), until, true) {
				until = l.trustedUntil()
				arm()
				continue
			}
		case <-changed:
			changed = l.t.identityChanged()
			if l.recheck(time.Now(), until, false) {
				if u := l.trustedUntil(); !u.Equal(until) {
					until = u
					arm() // Reset: no stale expiry is received after it (Go 1.23)
				}
				continue
			}
		case <-l.done:
		}
		break
	}
	l.t.aborts.release(l.aborts.Load())
	l.evMu.Lock()
	defer l.evMu.Unlock()
	if !l.byeSeen.Load() && errors.Is(l.err, ErrLinkLost) {
		l.t.noteLost(l.hello.Node)
	}
	if l.up {
		l.t.lifeLog.At(slog.LevelInfo, "down "+l.hello.Node, "link down", "peer", l.hello.Node, "remote", l.conn.RemoteAddr().String(), "err", l.err)
		l.t.cfg.Handler.LinkDown(l, l.err)
	}
}

// recheck verifies the peer's certificate under the node's identity at
// now, deadline being when its trust would end as last verified
// (trustedUntil) and fired whether that deadline has come. If it
// verifies, the link is held to the identity's CA from then on (l.ca);
// if not, the link ends when the deadline has come, and otherwise keeps
// the CA it was verified under until then. It says whether the link
// stays up. Only watch calls it.
func (l *quicLink) recheck(now, deadline time.Time, fired bool) bool {
	id := l.t.identity()
	_, err := id.VerifyPeer(peerCerts(l.conn), now)
	if err == nil {
		l.ca = id.CA
		if l.trustedUntil().After(now) {
			return true
		}
	} else if !fired && deadline.After(now) {
		return true
	}
	l.expire(deadline, err)
	return false
}

// expire ends the link because the deadline at which the peer's
// certificate, or the CA certificate it was verified under, expires has
// come; err is why the peer's certificate does not verify under the
// node's identity now (nil: it expires at this instant).
func (l *quicLink) expire(deadline time.Time, err error) {
	reason := fmt.Sprintf("certificate of %s expired at %s", l.hello.Node, l.notAfter.UTC().Format(time.RFC3339))
	if deadline.Before(l.notAfter) {
		reason = fmt.Sprintf("the CA certificate of mesh %s that signed the certificate of %s expired at %s",
			l.t.identity().Mesh, l.hello.Node, deadline.UTC().Format(time.RFC3339))
	}
	if err == nil {
		err = identity.ErrExpired
	}
	l.t.cfg.Logger.Warn("closing link: peer certificate expired", "peer", l.hello.Node, "reason", reason, "err", err)
	l.end(fmt.Errorf("link to %s: %w: %s: %w", l.hello.Node, ErrLinkLost, reason, err), codeGoodbye, reason, true)
}

// event delivers one Handler call unless the link is already down.
func (l *quicLink) event(fn func()) {
	l.evMu.Lock()
	defer l.evMu.Unlock()
	if l.Err() == nil {
		fn()
	}
}

// peerClose is a connection the peer closed with a code this package
// does not name: its text shows the code and the peer's reason through
// PeerText. errors.Is and errors.As find the QUIC error (and what it
// wraps) through it, but it does not unwrap to it, and does not match
// net.ErrClosed: quic-go's close errors unwrap to net.ErrClosed, which is
// ErrClosed here, a close of this node's own, and a close the peer sent
// is not one.
type peerClose struct {
	err  error
	text string
}

func (e *peerClose) Error() string { return e.text }

// Is matches what the QUIC error matches but net.ErrClosed.
func (e *peerClose) Is(target error) bool { return target != net.ErrClosed && errors.Is(e.err, target) }

// As lets errors.As find the QUIC error (*quic.ApplicationError,
// *quic.TransportError) and what it wraps.
func (e *peerClose) As(target any) bool { return errors.As(e.err, target) }

// cleanPeerClose returns err with the reason text of a close the peer
// sent (an application or a transport close with any code) made
// printable by PeerText; the QUIC error's own text would carry it as
// sent. The result does not match ErrClosed (see peerClose). Any other
// error is returned as it is.
func cleanPeerClose(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return &peerClose{err, fmt.Sprintf("closed by peer with code %#x", uint64(ae.ErrorCode)) + reasonSuffix(ae.ErrorMessage)}
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.Remote {
		return &peerClose{err, fmt.Sprintf("closed by peer with transport error %s", te.ErrorCode) + reasonSuffix(te.ErrorMessage)}
	}
	return err
}

// reasonSuffix is ": " and the peer's reason through PeerText, or
// nothing for an empty reason.
func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + PeerText(reason)
}
