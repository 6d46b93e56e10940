package links

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// Link refusals are logged at WARN once per address and direction per
// refusalLogPeriod, with the count of those suppressed. Inbound ones, one
// key per source prefix, at most maxRefusalLines a period in all: a
// stranger may own thousands of prefixes (an IPv6 /48 holds 65,536 of
// /64), and had a line written for each handshake the node refused
// (TestAttackStrangersFromManyPrefixesFloodTheLog).
const (
	refusalLogPeriod = time.Minute
	linkLogPeriod    = 10 * time.Second
	maxRefusalKeys   = 4096
	maxRefusalLines  = 16
)

// QUICTransport is a Transport over QUIC: one UDP socket per node, used to
// both dial and accept links.
type QUICTransport struct {
	cfg      QUICConfig
	quicConf *quic.Config
	tlsConf  *tls.Config
	ownConn  net.PacketConn // the socket we opened, nil if cfg.PacketConn
	tr       *quic.Transport
	ln       *quic.Listener
	instance uint64

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the transport and its links
	gate   *gate          // bounds inbound handshakes in progress (gate.go)
	// lag tells whether the node's own work was behind while a handshake
	// was in progress: a wait to run of a tenth of the handshake timeout
	// is a slow one.
	lag *schedLag
	// paths counts the connections per remote address: QUIC reads
	// short-header packets only from those (pathguard.go).
	paths *peerAddrs

	// refusals logs refusals of links this node dials at WARN, once per
	// address per minute; inRefusals those of links it accepts, once per
	// source prefix per minute and maxRefusalLines a minute in all;
	// floods logs failed and refused handshakes once per minute.
	refusals   *ratelog.Log
	inRefusals *ratelog.Log
	floods     *ratelog.Log
	// stallLog logs reclaimed streams once per peer per minute; stalled
	// counts them.
	stallLog *ratelog.Log
	stalled  atomic.Uint64
	// aborts holds each peer's budget of streams ended without an open;
	// abortLog logs the links it closes once per peer per minute.
	aborts   *abortTable
	abortLog *ratelog.Log
	// lifeLog writes the links' "link up", "link down", "peer draining",
	// "link dead" and "link lost before it was up" lines: one of each per
	// peer per linkLogPeriod, the next carrying the number held back, so
	// that a peer cycling its link at the handshake rate does not write a
	// line per handshake of each.
	lifeLog *ratelog.Log
	// id is the identity new links present and check peers with
	// (SetIdentity replaces it); idChanged is closed, and replaced under
	// idMu, when it does, so that live links recheck their peers.
	id        atomic.Pointer[identity.Identity]
	idMu      sync.Mutex
	idChanged chan struct{}

	mu      sync.Mutex
	links   map[string]*quicLink
	pending map[string][]*pending // verified handshakes not yet adopted, by peer
	// accepting counts, per certificate name, the inbound handshakes
	// past TLS that hold a gate slot (at most maxAcceptsPerName each).
	accepting map[string]int
	dials     map[*dialAttempt]struct{}
	closed    bool

	draining atomic.Bool
	lost     map[string]time.Time // when a link to a peer was last lost (not closed), for flap damping
}

var _ Transport = (*QUICTransport)(nil)

// NewQUICTransport opens the UDP socket (or uses cfg.PacketConn), starts
// accepting links and returns the transport. Close releases it.
func NewQUICTransport(cfg QUICConfig) (*QUICTransport, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	quicConf, err := cfg.linkQUIC()
	if err != nil {
		return nil, err
	}
	t := &QUICTransport{
		cfg:       cfg,
		quicConf:  quicConf,
		instance:  rand.Uint64(),
		gate:      newGate(),
		lag:       newSchedLag(cfg.HandshakeTimeout / 10),
		paths:     newPeerAddrs(),
		links:     make(map[string]*quicLink),
		pending:   make(map[string][]*pending),
		accepting: make(map[string]int),
		dials:     make(map[*dialAttempt]struct{}),
		refusals:  ratelog.New(cfg.Logger, refusalLogPeriod, maxRefusalKeys),
		inRefusals: ratelog.New(cfg.Logger, refusalLogPeriod, maxRefusalKeys).Total(maxRefusalLines,
			"link refusals from more source prefixes than the log names: counted, not logged, until the period ends"),
		floods:   ratelog.New(cfg.Logger, handshakeLogPeriod, 1),
		stallLog: ratelog.New(cfg.Logger, time.Minute, maxRefusalKeys),
		aborts:   newAbortTable(cfg.StreamAborts),
		abortLog: ratelog.New(cfg.Logger, time.Minute, maxRefusalKeys),
		lifeLog:  ratelog.New(cfg.Logger, linkLogPeriod, maxRefusalKeys),
		lost:     make(map[string]time.Time),
	}
	if r := cfg.testHandshakeRate; r > 0 {
		t.gate = newGateRate(r, r)
	}
	if r := cfg.testPrefixRate; r > 0 {
		t.gate.prefixRate, t.gate.prefixBurst = r, r
	}
	t.gate.forgiveWindow = 2 * cfg.HandshakeTimeout
	t.id.Store(cfg.Identity)
	t.idChanged = make(chan struct{})
	t.tlsConf = t.tlsConfig()
	pc := cfg.PacketConn
	if pc == nil {
		udp, err := net.ListenPacket("udp", cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("links: listen on %s: %w", cfg.ListenAddr, err)
		}
		pc, t.ownConn = udp, udp
	}
	t.tr = &quic.Transport{Conn: guardConn(pc, t.paths), VerifySourceAddress: t.gate.verifySource, ConnContext: t.connContext,
		ConnectionIDGenerator: t.paths.generator(2 * cfg.HandshakeTimeout), // pathguard.go
		// quic-go gives every connection that completes TLS a NEW_TOKEN
		// token that validated its IP for 24 hours, any number of times.
		// Links keep none, so the node takes none: only a Retry of the
		// handshake itself validates an address (gate.verifySource).
		MaxTokenAge: time.Nanosecond}
	lnConf := t.tlsConf.Clone()
	lnConf.GetConfigForClient = t.serverConfig
	ln, err := t.tr.Listen(lnConf, t.quicConf)
	if err != nil {
		_ = t.tr.Close()
		if t.ownConn != nil {
			_ = t.ownConn.Close()
		}
		return nil, fmt.Errorf("links: listen on %s: %w", pc.LocalAddr(), err)
	}
	t.ln = ln
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if cfg.Identity.Insecure {
		cfg.Logger.Warn("INSECURE DEVELOPMENT MODE: peer certificates are not checked; any node can join and claim any name",
			"mesh", cfg.Identity.Mesh)
	}
	cfg.Logger.Info("links listening", "addr", pc.LocalAddr().String())
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

func (t *QUICTransport) name() string { return t.cfg.Identity.Node }

// identity returns the identity in effect for new links.
func (t *QUICTransport) identity() *identity.Identity { return t.id.Load() }

// identityChanged is closed when SetIdentity next replaces the identity.
func (t *QUICTransport) identityChanged() <-chan struct{} {
	t.idMu.Lock()
	defer t.idMu.Unlock()
	return t.idChanged
}

// SetIdentity makes new links present and check peers with id, a renewed
// certificate (or CA) of the same node and mesh. Live links are kept,
// each closed when its peer's certificate or the CA certificate it was
// verified under expires: a live link whose peer's certificate verifies
// under id's CA is from then on held to id's CA's expiry (earlier or
// later than the one before); one whose peer's certificate does not (a
// CA of another key) keeps the CA it was verified under until that
// expires, and is then closed unless it verifies under the identity in
// effect then.
func (t *QUICTransport) SetIdentity(id *identity.Identity) error {
	cur := t.identity()
	if id == nil || id.Node != cur.Node || id.Mesh != cur.Mesh || id.Insecure != cur.Insecure {
		return fmt.Errorf("%w: a new identity must keep node %q and mesh %q", ErrConfig, cur.Node, cur.Mesh)
	}
	t.idMu.Lock()
	t.id.Store(id)
	close(t.idChanged)
	t.idChanged = make(chan struct{})
	t.idMu.Unlock()
	return nil
}

// LocalAddr is the UDP address peers dial.
func (t *QUICTransport) LocalAddr() net.Addr { return t.tr.Conn.LocalAddr() }

// Links returns the live links.
func (t *QUICTransport) Links() []Link {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Link, 0, len(t.links))
	for _, l := range t.links {
		out = append(out, l)
	}
	return out
}

// Link returns the live link to peer, or nil.
func (t *QUICTransport) Link(peer string) Link {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l := t.links[peer]; l != nil {
		return l
	}
	return nil
}

func (t *QUICTransport) acceptLoop() {
	defer t.wg.Done()
	for {
		conn, err := t.ln.Accept(t.ctx)
		if err != nil {
			return // listener or transport closed
		}
		// The connection holds a gate slot since its first packet.
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.accept(conn)
		}()
	}
}

func (t *QUICTransport) accept(conn *quic.Conn) {
	defer t.attempt(conn.RemoteAddr(), false)()
	s := slotOf(conn)
	if s != nil {
		s.accepted.Store(true)
		defer s.release()
	}
	if name, ok := t.certified(conn); ok {
		if !t.enterAccepting(name) {
			if s != nil {
				// TLS proved the certificate, but an honest node never
				// has so many handshakes at once: the prefix is struck,
				// so that these refusals do not leave it the reserve
				// the other nodes need while its redials spend the
				// node's handshake rate.
				s.prove(name)
				s.strike()
			}
			t.refusedIn(conn.RemoteAddr(), fmt.Errorf("accept link from %s: %w", conn.RemoteAddr(), refuse(conn,
				fmt.Errorf("%w: %s has %d link handshakes of %q in progress", ErrBusy, t.name(), maxAcceptsPerName, name))))
			return
		}
		defer t.leaveAccepting(name)
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	l, err := t.acceptHandshake(ctx, conn)
	if err != nil {
		if s != nil && !s.proven.Load() && !s.checked.Load() {
			if name, ok := t.certified(conn); ok {
				// Cut, or refused for its version or mesh, before the
				// link handshake looked at its certificate, but TLS
				// verified it and proved the peer holds its key.
				s.prove(name)
			}
		}
		err = fmt.Errorf("accept link from %s: %w", conn.RemoteAddr(), err)
		switch {
		case errors.Is(err, errDuplicate):
			// Both ends dialled at once and the peer kept the other
			// link: nothing failed.
			t.cfg.Logger.Debug("duplicate link closed by the peer", "remote", conn.RemoteAddr().String())
		case errors.Is(err, ErrRefused):
			t.refusedIn(conn.RemoteAddr(), err)
		default:
			t.noteHandshakeFailure(conn.RemoteAddr(), err)
		}
		return
	}
	if s != nil {
		s.linked.Store(true)
	}
	l.gaps.seed(l.est.Sub(began))
	if _, err := t.adopt(l); err != nil {
		if errors.Is(err, ErrRefused) {
			t.refusedIn(conn.RemoteAddr(), fmt.Errorf("accept link from %s: %w", conn.RemoteAddr(), err))
			return
		}
		// Per peer, as the link's other lines: a peer that closes its
		// handshakes while they wait to be adopted (awaitPreferred)
		// would write one line for each (TestAttackLinksLostBeforeUpFloodTheLog).
		t.lifeLog.At(slog.LevelInfo, "lost "+l.hello.Node, "link lost before it was up", "peer", l.hello.Node, "remote", conn.RemoteAddr().String(), "err", err)
	}
}

// maxAcceptsPerName bounds the inbound handshakes of one certificate
// name between TLS and the link (hello, ready, adoption), each holding a
// gate slot until it ends: a holder that completes TLS from a few
// addresses and then stalls, proven and so never counted as failed,
// cannot hold the slots the other nodes need. An honest node has one or
// two at once (a redial beside a simultaneous dial).
const maxAcceptsPerName = handshakeShare / 2

// enterAccepting counts one more inbound handshake of name past TLS,
// unless name has maxAcceptsPerName; leaveAccepting ends it.
func (t *QUICTransport) enterAccepting(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.accepting[name] >= maxAcceptsPerName {
		return false
	}
	t.accepting[name]++
	return true
}

func (t *QUICTransport) leaveAccepting(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.accepting[name]--; t.accepting[name] <= 0 {
		delete(t.accepting, name)
	}
}

// Dial links to the node at addr, or returns the existing link to it.
func (t *QUICTransport) Dial(ctx context.Context, addr string) (Link, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if !t.enter() {
		return nil, fmt.Errorf("dial %s: transport: %w", addr, ErrClosed)
	}
	defer t.wg.Done()
	t.mu.Lock()
	for _, l := range t.links {
		if sameAddr(l.RemoteAddr(), ua) {
			t.mu.Unlock()
			return l, nil
		}
	}
	t.mu.Unlock()
	// An address that sends nothing back fails after HandshakeTimeout
	// (QUIC's handshake idle timeout); one that answers gets twice that,
	// QUIC's own bound on the whole handshake.
	ctx, cancel := context.WithTimeout(ctx, 2*t.cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	defer t.attempt(ua, true)()
	began := time.Now()
	path := t.paths.register(ua)
	conn, err := t.tr.Dial(ctx, ua, t.verifying(path, ua, false), t.quicConf)
	if err != nil {
		path.end()
		err = fmt.Errorf("dial %s: %w", addr, t.dialErr(ctx, ua, time.Since(began), err))
		if errors.Is(err, ErrPathMTU) {
			// Whoever dialled (discovery logs its failed dials at
			// DEBUG), the operator must learn of it: once a minute
			// per address.
			t.refusals.Warn("mtu:"+ua.IP.String(), "link dial crossed a path too narrow for QUIC", "addr", addr, "err", err)
		}
		return nil, err
	}
	context.AfterFunc(conn.Context(), path.end)
	l, err := t.dialHandshake(ctx, conn)
	if err != nil && ctx.Err() != nil && t.ctx.Err() == nil {
		// The QUIC handshake completed: the peer answered, with a
		// certificate of the mesh CA.
		err = fmt.Errorf("%w: %w", ErrHandshakeSlow, err)
	}
	var survivor *quicLink
	if err == nil {
		l.gaps.seed(l.est.Sub(began))
		survivor, err = t.adopt(l)
	}
	if errors.Is(err, errDuplicate) {
		// The peer kept another link to us: return that one.
		survivor = t.waitLinkTo(ctx, ua)
		if survivor != nil {
			err = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return survivor, nil
}

// dialErr is the error of a QUIC dial to remote that failed after took.
func (t *QUICTransport) dialErr(ctx context.Context, remote net.Addr, took time.Duration, err error) error {
	if refusal := t.tlsRefusal(remote, err); refusal != nil {
		return refusal
	}
	if t.ctx.Err() != nil {
		return fmt.Errorf("transport: %w", ErrClosed)
	}
	if busy := busyRefusal(err); busy != nil {
		return busy
	}
	var idle *quic.IdleTimeoutError
	if ctx.Err() != nil && took >= t.cfg.HandshakeTimeout && !errors.As(err, &idle) {
		// Out of time, but never idle for HandshakeTimeout: the address
		// kept answering.
		return fmt.Errorf("%w: %w", ErrHandshakeSlow, err)
	}
	if ua, ok := remote.(*net.UDPAddr); ok && errors.As(err, &idle) {
		// Nothing came back: quic-go drops a datagram the kernel
		// refuses as too large without a word, so the path's MTU is
		// the one signal of why.
		if narrow := narrowPath(ua); narrow != nil {
			return fmt.Errorf("%w: %w", narrow, err)
		}
	}
	return err
}

// busyRefusal is the error of a dial the peer refused with QUIC's
// CONNECTION_REFUSED, wrapping ErrBusy, or nil for any other error. A
// node sends it for a connection its handshake gate refuses at the first
// packet (gate.enter: too many handshakes in progress, or its source
// prefix starting them too fast), when its QUIC accept queue is full, and
// when its listener is closing: each time "not now", never a verdict on
// the dialler's certificate. quic-go's error unwraps to net.ErrClosed
// (ErrClosed, a close of this node's own); the result does not.
func busyRefusal(err error) error {
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.Remote || te.ErrorCode != quic.ConnectionRefused {
		return nil
	}
	return fmt.Errorf("%w at the peer: %w", ErrBusy, cleanPeerClose(err))
}

// waitLinkTo waits briefly for a link whose remote address is addr: the
// survivor of a simultaneous dial.
func (t *QUICTransport) waitLinkTo(ctx context.Context, addr net.Addr) *quicLink {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		for _, l := range t.links {
			if sameAddr(l.RemoteAddr(), addr) {
				t.mu.Unlock()
				return l
			}
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// enter counts a caller's goroutine in t.wg unless the transport is
// closed, so that Close waits for it.
func (t *QUICTransport) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// maxLostMemory bounds the peers remembered for flap damping.
const maxLostMemory = 4096

// noteLost remembers that the link to peer was lost.
func (t *QUICTransport) noteLost(peer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if len(t.lost) >= maxLostMemory {
		for p, at := range t.lost {
			if now.Sub(at) > flapMemory {
				delete(t.lost, p)
			}
		}
		if len(t.lost) >= maxLostMemory {
			return
		}
	}
	t.lost[peer] = now
}

// flapped reports whether a link to peer was lost within flapMemory.
func (t *QUICTransport) flapped(peer string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.lost[peer]
	if ok && time.Since(at) > flapMemory {
		delete(t.lost, peer)
		ok = false
	}
	return ok
}

// Drain tells every neighbour, now and on links that come up later, that
// this node is shutting down: each neighbour then reports its link to this
// node at the highest cost, so routing sends new circuits around it, while
// circuits already open keep flowing until Close.
func (t *QUICTransport) Drain() {
	if t.draining.Swap(true) {
		return
	}
	t.mu.Lock()
	ls := make([]*quicLink, 0, len(t.links))
	for _, l := range t.links {
		ls = append(ls, l)
	}
	t.mu.Unlock()
	for _, l := range ls {
		l.sendDraining()
	}
}

// Close closes every link with a goodbye, then the transport, and waits
// for all its goroutines. It must not be called from a Handler method.
func (t *QUICTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	ls := make([]*quicLink, 0, len(t.links))
	for _, l := range t.links {
		ls = append(ls, l)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { _ = l.Close("transport closing") })
	}
	wg.Wait()
	t.cancel()
	_ = t.ln.Close()
	err := t.tr.Close()
	if t.ownConn != nil {
		if cerr := t.ownConn.Close(); err == nil {
			err = cerr
		}
	}
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("close transport: %w", err)
	}
	return nil
}
