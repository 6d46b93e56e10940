package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// Errors returned by the node itself (circuit refusals are the typed errors
// of package circuit).
var (
	// ErrNotStarted: the node's Start has not succeeded yet.
	ErrNotStarted = errors.New("node not started")
	// ErrClosed: the node is closed. It matches net.ErrClosed.
	ErrClosed = net.ErrClosed
	// ErrAlreadyStarted: Start called again while a Start runs or after
	// one succeeded.
	ErrAlreadyStarted = errors.New("node already started")
	// ErrServiceInUse: Listen on a service that already has a listener.
	ErrServiceInUse = errors.New("service already has a listener")
	// ErrNotLinked: Unlink of an address that is not a static link.
	ErrNotLinked = errors.New("not a static link")
	// ErrTooManySubscribers: Subscribe past MaxSubscribers.
	ErrTooManySubscribers = errors.New("too many event subscribers")
	// ErrInvalidService: a service name that breaks the rule of
	// circuit.ValidateService (it is circuit.ErrInvalidService).
	ErrInvalidService = circuit.ErrInvalidService
)

// Node is one mesh node: it owns its links, the routing engine, circuit
// dispatch, services, discovery and telemetry. Create it with New, bring it
// up with Start and end it with Close. All methods are safe for concurrent
// use.
type Node struct {
	cfg     Config
	log     *slog.Logger
	tracer  trace.Tracer
	metrics *metrics
	id      atomic.Pointer[identity.Identity]
	// setID serializes identity changes (SetIdentity, ReloadIdentity):
	// the identity's parts (id, seal, the transport's and the router's)
	// are set one after another, and two changes at once could leave
	// parts of each.
	setID   sync.Mutex
	idFiles struct {
		cert, key, ca string
		ok            bool
	}
	// traceOff: the tracer provider is the no-op one (Config's default),
	// so spans record nothing and their attributes are not built.
	traceOff bool

	role    links.Role
	seal    atomic.Pointer[seal.Keys] // end-to-end identity, follows id
	strikes *seal.Strikes             // replay register for early data
	// earlyDropped counts one-message opens whose early data was not
	// taken because the process before this one may have taken it.
	earlyDropped atomic.Uint64
	keyBook      *keyBook // verified key records of other nodes
	authz        *authz   // authorization policy and the circuits it allowed

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node owns

	started   time.Time
	transport links.Transport
	router    *router
	limits    *limiter
	circuits  *circuitSet
	// resumables holds the ends of resumable circuits, with a path or
	// waiting for one; resumeTable finds them for resume opens.
	resumables  *circuitSet
	resumeTable *circuit.ResumeTable
	rbudget     *resumeBudget // the buffers of the resumable circuits ending here
	suspects    *hopSuspects  // next hops circuits made no progress through, per destination
	dbudget     *resumeBudget // the buffers of the resumable circuits this node dials
	events      *eventHub
	disco       *discovery
	bound       *discovery // admits links within MaxLinks; set before gossip starts (guarded by mu)
	loop        loopback

	// gossipTr is Config.Discovery.Transport until gossip takes it over
	// (guarded by mu): Close shuts it down if gossip never did.
	gossipTr interface{ Shutdown() error }

	linkEvents sync.Mutex // held by LinkUp and LinkDown (handler.go)

	mu    sync.Mutex
	state int // stateNew, stateStarting, stateRunning, stateClosing, stateClosed
	// startStop and startDone are set while Start runs (stateStarting):
	// Close stops the start with startStop and waits for startDone, closed
	// once Start has either published the running node or undone what it
	// started.
	startStop func(error)
	startDone chan struct{}
	links     map[string]links.Link
	// unadmitted holds the outgoing links routing has not heard of yet:
	// discovery dialled them and the peer may still refuse them
	// (handler.go).
	unadmitted map[string]links.Link
	// held holds the links flap damping keeps from routing for a while
	// (flapdamp.go); flaps is the damping's state (linkEvents).
	held      map[string]*heldLink
	flaps     flapDamper
	flapLog   *ratelog.Log
	services  map[string]*listener
	keeps     map[string]func()     // static links: address → stop
	pins      map[string]links.Cost // pinned link costs by peer
	keepPeers map[string]string     // static link address → peer, for Unlink

	httpTr   atomic.Pointer[meshTransport] // HTTPTransport, made on first use
	closeErr error
	draining chan struct{} // closed when Close starts draining
	drainCut chan struct{} // closed by CutDrain: Close stops waiting for circuits
	cutOnce  sync.Once
	closed   chan struct{}
}

const (
	stateNew = iota
	// stateStarting: Start is under way. Links, static links, discovery
	// and incoming circuits work (the start needs them), but the public
	// API reports ErrNotStarted until Start has succeeded.
	stateStarting
	stateRunning
	stateClosing
	stateClosed
)

// New validates cfg, loads the node's identity and returns a node; Start
// brings it up.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.checkNames(); err != nil {
		return nil, err
	}
	certFile, keyFile, caFile, fromFiles := identityFiles(&cfg)
	id, err := loadIdentity(&cfg)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(id, time.Now()); err != nil {
		return nil, fmt.Errorf("new node %s: %w", id.Node, err)
	}
	cfg.Identity = id
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger.With("node", cfg.Name),
		tracer:     cfg.TracerProvider.Tracer(tracerName),
		traceOff:   isNoopTracing(cfg.TracerProvider),
		links:      make(map[string]links.Link),
		unadmitted: make(map[string]links.Link),
		held:       make(map[string]*heldLink),
		pins:       make(map[string]links.Cost, len(cfg.LinkCosts)),
		keepPeers:  make(map[string]string),
		services:   make(map[string]*listener),
		keeps:      make(map[string]func()),
		draining:   make(chan struct{}),
		drainCut:   make(chan struct{}),
		closed:     make(chan struct{}),
		gossipTr:   cfg.Discovery.Transport,
	}
	for peer, c := range cfg.LinkCosts {
		n.pins[peer] = c
	}
	n.id.Store(id)
	n.idFiles.cert, n.idFiles.key, n.idFiles.ca, n.idFiles.ok = certFile, keyFile, caFile, fromFiles
	if cfg.Leaf {
		n.role = links.RoleLeaf
	}
	keys, err := seal.NewKeys(id)
	if err != nil {
		return nil, err
	}
	n.seal.Store(keys)
	strikes, strikeWindow := 0, time.Duration(0)
	if cfg.hooks != nil {
		strikes, strikeWindow = cfg.hooks.strikes, cfg.hooks.strikeWindow
	}
	n.strikes = seal.NewStrikes(strikes, strikeWindow, time.Now())
	n.keyBook = newKeyBook(cfg.Limits.MaxRoutes, cfg.Keys)
	n.authz = newAuthz(cfg.Policy)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.metrics = newMetrics(n)
	n.flapLog = ratelog.New(n.log, time.Minute, 1024)
	n.limits = newLimiter(cfg.Limits, n.log)
	n.circuits = newCircuitSet()
	n.resumables = newCircuitSet()
	n.suspects = newHopSuspects()
	// The table holds every resumable circuit the limits admit: a
	// source's circuits and those waiting for a resume, which hold no
	// circuit place. A circuit closed here stays in it until its end is
	// acknowledged or ResumeTimeout passes, but keeps its place while its
	// path is open and counts as waiting for a resume once that failed,
	// so it is counted (TestAttackWithheldAcksFillResumeTable). Bounded
	// by the package's constants alone, it
	// registered only the first 1,024 circuits of a source a raised
	// MaxCircuitsPerSource admitted, and the rest were not resumable.
	l := cfg.Limits
	perSource, total := addSat(l.MaxCircuitsPerSource, l.MaxParkedPerSource), addSat(l.MaxCircuits, l.MaxParked)
	if cfg.hooks == nil || !cfg.hooks.exactResumeTable {
		perSource, total = max(circuit.MaxResumablePerSource, perSource), max(circuit.MaxResumable, total)
	}
	n.resumeTable = circuit.NewResumeTableSized(perSource, total)
	n.rbudget = newResumeBudget(cfg.Limits, n.metrics.reg)
	n.dbudget = newDialBudget(cfg.Limits, n.metrics.reg)
	n.dbudget.waitLog = n.logSendWait
	n.events = newEventHub(n.metrics)
	n.router, err = newRouter(n)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// addSat is a+b for limits (not negative), math.MaxInt where the sum
// would overflow: a limit raised near it must not wrap the bound to a
// negative one.
func addSat(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

// loadIdentity returns the configured identity, loading it from files or
// generating a development one.
func loadIdentity(cfg *Config) (*identity.Identity, error) {
	if cfg.Identity != nil {
		return cfg.Identity, nil
	}
	if cfg.Insecure {
		if cfg.Name == "" {
			return nil, fmt.Errorf("%w: Name is required", ErrInvalidConfig)
		}
		return identity.Insecure(cfg.Name, cfg.Mesh)
	}
	cert, key, ca, ok := identityFiles(cfg)
	if !ok {
		return nil, fmt.Errorf("%w: no identity: set Identity, DataDir, the CertFile/KeyFile/CAFile trio, or Insecure", ErrInvalidConfig)
	}
	id, err := identity.LoadIdentity(cert, key, ca)
	if err != nil {
		return nil, fmt.Errorf("load identity of node %q: %w", cfg.Name, err)
	}
	return id, nil
}

// Start opens the transport, links to static peers, joins gossip and starts
// routing. ctx bounds only the start itself: when it ends first (and when
// Close is called meanwhile), Start undoes what it started, leaves the node
// closed and returns an error wrapping ctx's (or ErrClosed). Start on a
// closed node fails with ErrClosed; Start while a Start runs, or after one
// succeeded, fails with ErrAlreadyStarted and changes nothing.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	switch n.state {
	case stateNew:
	case stateClosing, stateClosed:
		n.mu.Unlock()
		return fmt.Errorf("start node %s: %w", n.cfg.Name, ErrClosed)
	default:
		n.mu.Unlock()
		return fmt.Errorf("start node %s: %w", n.cfg.Name, ErrAlreadyStarted)
	}
	sctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	done := make(chan struct{})
	defer close(done) // last: Close waits for it, then finds the node running or closed
	n.state = stateStarting
	n.started = time.Now()
	n.startStop, n.startDone = stop, done
	n.mu.Unlock()

	err := n.start(sctx)
	n.mu.Lock()
	n.startStop, n.startDone = nil, nil
	if err == nil && sctx.Err() == nil {
		n.state = stateRunning
		addr := n.transport.LocalAddr()
		n.mu.Unlock()
		n.log.Info("node started", "addr", addr.String(), "mesh", n.cfg.Mesh, "role", n.role.String())
		return nil
	}
	if err == nil {
		err = context.Cause(sctx)
	}
	if n.transport == nil { // nothing started but the node's context
		n.closeUnstartedLocked()
	} else {
		c := n.beginCloseLocked()
		n.mu.Unlock()
		n.finishClose(c)
	}
	return fmt.Errorf("start node %s: %w", n.cfg.Name, err)
}

// errClosedWhileStarting is the cause with which Close stops a Start.
var errClosedWhileStarting = fmt.Errorf("closed while starting: %w", ErrClosed)

// start runs the phases of Start, stopping between them once ctx ends.
func (n *Node) start(ctx context.Context) error {
	n.warnExpiring(time.Now())
	if n.identity().Insecure {
		n.log.Warn("INSECURE development mode: throwaway identity, ANY peer is accepted; never use this in production")
	}
	if n.cfg.E2E == E2EOff {
		n.log.Warn("END-TO-END SECURITY OFF (e2e=off): circuits this node opens are sent in the clear and unsealed circuits are accepted; every router on a path can read, change and forge them")
	}
	n.logPolicy()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var tr links.Transport
	var err error
	if n.cfg.NewTransport != nil {
		tr, err = n.cfg.NewTransport((*linkHandler)(n), n.role)
	} else {
		tr, err = links.NewQUICTransport(links.QUICConfig{
			Identity:   n.identity(),
			Role:       n.role,
			ListenAddr: n.cfg.ListenAddr,
			PacketConn: n.cfg.PacketConn,
			Handler:    (*linkHandler)(n),
			MaxStreams: n.cfg.Limits.MaxCircuitsPerLink,
			Logger:     n.log,
			// Link buffers: see Limits.LinkWindow and ReaderStall.
			MaxStreamWindow: n.cfg.Limits.StreamWindow,
			LinkWindow:      n.cfg.Limits.LinkWindow,
			ReaderStall:     n.cfg.Limits.ReaderStall,
			StalledCode:     circuit.CloseStalled,
			StreamAborts:    n.cfg.Limits.StreamAborts,
			OnRefused: func(remote net.Addr, err error) {
				n.metrics.linkRefused.Inc()
			},
		})
		if errors.Is(err, links.ErrConfig) {
			err = fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.transport = tr
	n.mu.Unlock()
	n.router.start()
	n.wg.Add(4)
	for _, b := range []*resumeBudget{n.rbudget, n.dbudget} {
		go func() {
			defer n.wg.Done()
			b.evictLoop(n.ctx.Done())
		}()
	}
	go n.watchCertificate()
	go func() {
		defer n.wg.Done()
		n.sampleLinkRTT()
	}()
	n.startBuiltin(EchoService, echo)
	if !n.cfg.DisableInfo {
		n.startBuiltin(InfoService, n.serveInfo)
	}
	for _, addr := range n.cfg.StaticLinks {
		n.keep(addr)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if n.cfg.Discovery.BindAddr != "" {
		d, err := startDiscovery(ctx, n)
		if err != nil {
			return err
		}
		n.mu.Lock()
		n.disco = d
		n.mu.Unlock()
	}
	return nil
}

// running reports whether the node accepts new circuits.
func (n *Node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == stateRunning
}

// up reports whether the node is starting or running: its links, static
// links, discovery and circuit dispatch work.
func (n *Node) up() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.upLocked()
}

func (n *Node) upLocked() bool {
	return n.state == stateStarting || n.state == stateRunning
}

// notRunning is the error of a call that needs a running node: ErrClosed
// once Close has begun, else ErrNotStarted.
func (n *Node) notRunning() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stateClosing || n.state == stateClosed {
		return errShutDown
	}
	return ErrNotStarted
}

// errShutDown matches ErrClosed and says what it means: ErrClosed's own
// text is net.ErrClosed's, "use of closed network connection", which the
// CLI printed for a forward refused while the daemon drained.
var errShutDown error = shutDownError{}

type shutDownError struct{}

func (shutDownError) Error() string        { return "the node is shutting down or closed" }
func (shutDownError) Is(target error) bool { return target == ErrClosed }

// drainer is implemented by transports that can tell neighbours this node
// is shutting down before its links close.
type drainer interface{ Drain() }

// Close drains, then closes: it refuses new circuits (shutting down),
// stops accepting on Forward listeners, tells neighbours to route new
// circuits around this node, lets open circuits (Forward and Expose
// connections included) finish within GracePeriod, resets the rest and
// closes the links. Status reports "draining" meanwhile. It waits for
// every goroutine the node started. The Reads and Writes of a circuit it
// reset fail at this end with an error matching circuit.ErrShuttingDown,
// as at the other end. Called while Start runs, it stops the start, which
// then undoes what it started and fails with ErrClosed. On a node never
// started it closes the listeners published before Start.
func (n *Node) Close() error {
	n.mu.Lock()
	for n.state == stateStarting {
		stop, done := n.startStop, n.startDone
		n.mu.Unlock()
		stop(errClosedWhileStarting)
		if n.cfg.hooks != nil && n.cfg.hooks.startStopped != nil {
			n.cfg.hooks.startStopped()
		}
		<-done
		n.mu.Lock()
	}
	switch n.state {
	case stateNew:
		n.closeUnstartedLocked()
		return nil
	case stateClosing, stateClosed:
		n.mu.Unlock()
		<-n.closed
		return n.closeErr
	}
	c := n.beginCloseLocked()
	n.mu.Unlock()
	return n.finishClose(c)
}

// CutDrain ends the drain of Close now, or of a Close to come: the
// circuits still open are reset at once instead of getting GracePeriod,
// and Close goes on with the quick part of its shutdown, the goodbye on
// every link and the gossip leave, which neighbours learn of at once.
func (n *Node) CutDrain() {
	n.cutOnce.Do(func() { close(n.drainCut) })
}

// closeUnstartedLocked closes a node whose transport never opened (n.mu
// held, and released): nothing runs but its context, and the listeners
// published before Start, which it closes so that their Accept returns.
// The sockets Config gave it are closed as a node that ran closes them.
func (n *Node) closeUnstartedLocked() {
	n.state = stateClosed
	services := n.listenersLocked()
	n.mu.Unlock()
	for _, l := range services {
		l.Close()
	}
	if n.cfg.PacketConn != nil {
		n.cfg.PacketConn.Close()
	}
	n.shutdownUnusedGossip()
	n.cancel()
	close(n.draining)
	close(n.closed)
}

// listenersLocked is the listeners of the published services (n.mu held).
func (n *Node) listenersLocked() []*listener {
	out := make([]*listener, 0, len(n.services))
	for _, l := range n.services {
		out = append(out, l)
	}
	return out
}

// closing is what Close takes from the node as it starts draining.
type closing struct {
	services []*listener
	keeps    map[string]func()
}

// beginCloseLocked marks the node closing (n.mu held): from now on it
// refuses new circuits, and Forward listeners stop accepting.
func (n *Node) beginCloseLocked() closing {
	n.state = stateClosing
	close(n.draining)
	for _, h := range n.held {
		h.timer.Stop()
	}
	c := closing{services: n.listenersLocked(), keeps: n.keeps}
	n.keeps = map[string]func(){}
	return c
}

// finishClose drains the node beginCloseLocked marked closing and closes
// it.
func (n *Node) finishClose(c closing) error {
	grace := max(n.cfg.GracePeriod, 0)
	n.log.Info("node draining", "circuits", n.circuits.len(), "grace", grace)
	if d, ok := n.transport.(drainer); ok {
		d.Drain()
	}
	if m := n.httpTr.Load(); m != nil {
		m.CloseIdleConnections()
	}
	for _, stop := range c.keeps {
		stop()
	}
	if n.disco != nil {
		n.disco.leave(grace)
	}
	// Let open circuits finish, then reset the rest.
	if n.circuits.len() > 0 {
		n.circuits.waitEmpty(grace, n.drainCut)
		n.circuits.resetAll()
		n.linger()
	}
	n.resumables.endAll() // those waiting for a new path too; their goroutines end
	for _, l := range c.services {
		l.Close()
	}
	err := n.transport.Close()
	if n.cfg.PacketConn != nil {
		n.cfg.PacketConn.Close()
	}
	n.loop.close()
	n.router.stop()
	n.cancel()
	n.wg.Wait()
	if n.disco != nil {
		n.disco.shutdown()
	}
	n.shutdownUnusedGossip()
	n.events.closeAll()

	n.mu.Lock()
	n.state = stateClosed
	n.closeErr = err
	n.mu.Unlock()
	close(n.closed)
	n.log.Info("node closed")
	return err
}

// shutdownUnusedGossip shuts down Config.Discovery.Transport unless
// gossip took it over (startDiscovery), which then shuts it down: a
// Start that ended before gossip, or none, left its sockets open.
func (n *Node) shutdownUnusedGossip() {
	n.mu.Lock()
	tr := n.gossipTr
	n.gossipTr = nil
	n.mu.Unlock()
	if tr != nil {
		_ = tr.Shutdown()
	}
}

// linger gives the last bytes of circuits that just ended time to reach
// their peers before the links close (closing a QUIC connection discards
// data not yet sent): a few round trips of the slowest link.
func (n *Node) linger() {
	var rtt time.Duration
	for _, l := range n.Links() {
		rtt = max(rtt, l.RTT)
	}
	time.Sleep(min(3*rtt+20*time.Millisecond, 500*time.Millisecond))
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr is the UDP address of the node's links (nil before Start).
func (n *Node) Addr() net.Addr {
	tr := n.transportNow()
	if tr == nil {
		return nil
	}
	return tr.LocalAddr()
}

// discoNow is the node's discovery, nil without one and until Start has
// started it.
func (n *Node) discoNow() *discovery {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.disco
}

// transportNow is the node's transport, nil until Start has made it.
func (n *Node) transportNow() links.Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.transport
}

// Link dials the node at addr now, returning the dial's error, and keeps
// the link up afterwards (redialling with backoff while the peer is down).
// It fails with ErrNotStarted before Start has succeeded and with
// ErrClosed once Close has begun.
func (n *Node) Link(ctx context.Context, addr string) error {
	if !n.running() {
		return fmt.Errorf("link to %s: %w", addr, n.notRunning())
	}
	l, err := n.transport.Dial(links.WithStatic(ctx), addr)
	if err != nil {
		return fmt.Errorf("link to %s: %w", addr, err)
	}
	n.keep(addr)
	n.mu.Lock()
	if n.keeps[addr] != nil && len(n.keepPeers) < maxKeepPeers {
		n.keepPeers[addr] = l.Peer()
	}
	n.mu.Unlock()
	return nil
}

// maxKeepPeers bounds the peer names remembered for Unlink.
const maxKeepPeers = 4096

// Unlink undoes Link, or a Config.StaticLinks entry: it stops redialling
// addr and closes the link to the node there, if one is up; routing then
// moves to other links. It fails with ErrNotLinked when addr is not a
// static link.
func (n *Node) Unlink(addr string) error {
	n.mu.Lock()
	stop, ok := n.keeps[addr]
	peer := n.keepPeers[addr]
	delete(n.keeps, addr)
	delete(n.keepPeers, addr)
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("unlink %s: %w", addr, ErrNotLinked)
	}
	stop() // waits for the redial loop to end
	n.mu.Lock()
	var victim links.Link
	for _, l := range n.links {
		if l.Peer() == peer || addrString(l.RemoteAddr()) == addr {
			victim = l
		}
	}
	n.mu.Unlock()
	if victim != nil {
		victim.Close("unlinked by " + n.cfg.Name)
	}
	n.log.Info("static link removed", "addr", addr, "peer", peer)
	return nil
}

// keeper is implemented by transports that redial static links.
type keeper interface {
	Keep(addr string) (stop func())
}

// keep maintains a static link to addr.
func (n *Node) keep(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.upLocked() || n.keeps[addr] != nil {
		return
	}
	tr := n.transport
	if k, ok := tr.(keeper); ok {
		n.keeps[addr] = k.Keep(addr)
		return
	}
	// Transports without redial (in-memory links) get one attempt.
	ctx, cancel := context.WithCancel(n.ctx)
	n.keeps[addr] = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if _, err := tr.Dial(links.WithStatic(ctx), addr); err != nil && ctx.Err() == nil {
			n.log.Warn("static link failed", "addr", addr, "err", err)
		}
	}()
}

// Links lists live links, sorted by peer.
func (n *Node) Links() []LinkInfo {
	n.mu.Lock()
	ls := make([]links.Link, 0, len(n.links))
	for _, l := range n.links {
		ls = append(ls, l)
	}
	n.mu.Unlock()
	out := make([]LinkInfo, 0, len(ls))
	for _, l := range ls {
		q := l.Quality()
		cost, pinned := n.linkCost(l)
		out = append(out, LinkInfo{
			Peer: l.Peer(), Address: addrString(l.RemoteAddr()), Role: l.PeerRole().String(),
			Outbound: l.Outbound(), RTT: q.RTT, RTTVar: q.RTTVar, Loss: q.Loss, Cost: cost,
			Pinned: pinned, Draining: q.Draining, Streams: l.OpenStreams(), Since: l.Established(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Peer < out[j].Peer })
	return out
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Status summarises the node.
func (n *Node) Status() Status {
	n.mu.Lock()
	nlinks := len(n.links)
	started := n.started
	state := n.state
	disco := n.disco
	n.mu.Unlock()
	st := Status{
		State: "running",
		Name:  n.cfg.Name, Mesh: n.cfg.Mesh, Role: n.role.String(), Address: addrString(n.Addr()),
		Insecure: n.identity().Insecure, E2E: n.cfg.E2E.String(), Started: started, Links: nlinks,
		Circuits: n.circuits.len(), Relayed: n.circuits.relayed(), Services: n.Services(),
		RoutesLimit: n.cfg.Limits.MaxRoutes,
	}
	if id := n.identity(); !id.Insecure {
		st.CertNotAfter = id.Cert.NotAfter
	}
	switch state {
	case stateNew:
		st.State = "new"
	case stateStarting:
		st.State = "starting"
	case stateClosing:
		st.State = "draining"
	case stateClosed:
		st.State = "closed"
	}
	for _, p := range n.Peers() {
		if p.Reachable && p.Name != n.cfg.Name {
			st.Reachable++
		}
	}
	if disco != nil {
		st.GossipAddr = disco.addr()
	}
	return st
}

// link returns the live link to peer, if any.
func (n *Node) link(peer string) links.Link {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[peer]
}

// unkeep stops maintaining a static link to addr.
func (n *Node) unkeep(addr string) {
	n.mu.Lock()
	stop := n.keeps[addr]
	delete(n.keeps, addr)
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}
