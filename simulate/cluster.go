package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/links/memlink"
	"github.com/circuitmesh/circuitmesh/node"
)

// Config configures a Cluster. The zero value runs QUIC links with quiet
// logs.
type Config struct {
	// Backend selects the links. Default BackendQUIC.
	Backend Backend
	// Mesh is the mesh name. Default "sim".
	Mesh string
	// Seed makes packet loss (links and gossip), the gossip key, a
	// script's discover order=random and the pairs of a workload without
	// a seed of its own repeatable. Default 1. A script's random graph
	// and regions underlay are drawn from their own seed= (default 0 and
	// 1) when the script is parsed, not from this one.
	Seed uint64
	// Logger receives the nodes' logs. Default: discarded.
	Logger *slog.Logger
	// GracePeriod is each node's node.Config.GracePeriod. Default 200 ms.
	GracePeriod time.Duration
	// Ordered makes runs on the mem backend repeatable: the links'
	// events and routing messages are delivered one at a time in an order
	// fixed by their due times and link names, each delivery's
	// consequences settling (synctest.Wait) before the next; latency then
	// delays routing messages and loss retransmits them. Only for a
	// Cluster created inside a testing/synctest bubble (Test and
	// RunVirtual set it unless Unordered; NewCluster refuses it outside
	// one); the QUIC backend ignores it. While such a cluster runs, the
	// network itself is in synctest.Wait after each delivery: code of
	// the bubble must not call synctest.Wait too (it would panic, "wait
	// already in progress"); time.Sleep lets the cluster run instead.
	Ordered bool
	// Unordered keeps Test and RunVirtual from setting Ordered: the links'
	// events are then handled in parallel, which took 30 % less CPU at
	// 1000 nodes (docs/SIMULATE.md, Scale), and runs do not repeat.
	Unordered bool
	// NodeConfig, when set, adjusts every node's configuration before
	// node.New (after the cluster filled in name, identity and transport).
	NodeConfig func(*node.Config)
}

func (c *Config) setDefaults() {
	if c.Backend == "" {
		c.Backend = BackendQUIC
	}
	if c.Mesh == "" {
		c.Mesh = "sim"
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	c.Logger = c.logger()
	if c.GracePeriod == 0 {
		c.GracePeriod = 200 * time.Millisecond
	}
}

// logger is the configured logger or one that discards.
func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler) // disabled: the nodes do not even format their logs
	}
	return c.Logger
}

// Errors of cluster operations (wrapped with context).
var (
	// ErrUnknownNode: the name is not a node of the cluster.
	ErrUnknownNode = errors.New("no such node")
	// ErrNodeDown: the node is not running: it was killed and not
	// restarted, or its start failed.
	ErrNodeDown = errors.New("node is down")
	// ErrNodeUp: the node is running, or an AddNodes or Restart is
	// starting it.
	ErrNodeUp = errors.New("node is up")
	// ErrNoEdge: the two nodes are not linked in the topology.
	ErrNoEdge = errors.New("no such link")
	// ErrTooManyNodes: the cluster holds MaxNodes nodes already (each
	// node's route table holds twice that, so a larger cluster could not
	// converge).
	ErrTooManyNodes = errors.New("too many nodes")
	// ErrInvalidArgument: a value given to a cluster's method is out of
	// its range (a negative size, count or latency, a loss above 1, a
	// rate that is not a number, a link from a node to itself); the error
	// names the value. Nothing was started or changed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrDuplicateNode: AddNodes was given a name twice, or the name of
	// a node of the cluster.
	ErrDuplicateNode = errors.New("node already in the cluster")
)

// Cluster is a set of real nodes (package node) in one process, linked by
// a topology of edges over a simulated network. Create it with NewCluster
// and end it with Close. Methods are safe for concurrent use.
type Cluster struct {
	cfg   Config
	be    backend
	ctx   context.Context // cancelled by Close
	end   context.CancelFunc
	wg    sync.WaitGroup // background dials, service loops, event collectors
	kills sync.WaitGroup // closing killed nodes
	// starts counts the AddNodes and Restart calls under way: Close
	// cancels their contexts and waits for them.
	starts sync.WaitGroup

	mu      sync.Mutex
	order   []string // node names in creation order
	members map[string]*member
	names   nameTable // of the names the event logs record
	edges   map[pair]*edge
	closed  bool
	// down is closed once Close has closed everything.
	down chan struct{}
	// unconverged is the node Converged last found not converged.
	unconverged string

	// quiesce, on an ordered mem network, returns once every goroutine
	// of the bubble is blocked with nothing due (memlink's Quiesce).
	quiesce func()
	// routingLoad, on mem, is what the links hold of routing payloads.
	routingLoad func() memlink.RoutingLoad

	// closing, when set (by a test), is called as Close starts closing
	// each node.
	closing func(name string)

	// optimal keeps MeasureMesh's latency-optimal paths between
	// measurements.
	optimal optimalCache
}

// member is one named node across restarts.
type member struct {
	name string
	n    *node.Node // nil while down
	dead chan struct{}
	// starting is set while an AddNodes or Restart starts the node.
	starting bool
	events   *eventLog
	stop     func() // ends the recording of n's events
	// reach counts the peers n reports reachable (its peer-up less its
	// peer-down events): a convergence check that finds it wrong need not
	// read n's routing table.
	reach *atomic.Int64
}

// edge is a link of the topology; a dials b.
type edge struct {
	a, b   string
	params LinkParams
	cut    bool
}

// NewCluster returns an empty cluster; add nodes with AddNodes.
func NewCluster(cfg Config) (*Cluster, error) {
	cfg.setDefaults()
	c := &Cluster{cfg: cfg, members: map[string]*member{}, edges: map[pair]*edge{}, down: make(chan struct{})}
	switch cfg.Backend {
	case BackendQUIC:
		be, err := newQUICBackend(cfg.Mesh, cfg.Seed)
		if err != nil {
			return nil, err
		}
		c.be = be
	case BackendMem:
		if cfg.Ordered && !virtualClock() {
			return nil, fmt.Errorf("simulate: %w: Config.Ordered needs a cluster created inside a testing/synctest bubble", ErrUnsupported)
		}
		be, err := newMemBackend(cfg.Mesh, cfg.Seed, cfg.Ordered)
		if err != nil {
			return nil, err
		}
		c.be, c.routingLoad = be, be.net.RoutingLoad
		if cfg.Ordered {
			c.quiesce = be.net.Quiesce
		}
	default:
		return nil, fmt.Errorf("simulate: unknown backend %q (want %q or %q)", cfg.Backend, BackendQUIC, BackendMem)
	}
	gb, err := newGossipBackend(c.be, cfg.Seed)
	if err != nil {
		return nil, err
	}
	c.be = gb
	c.ctx, c.end = context.WithCancel(context.Background())
	return c, nil
}

// clusterMaxRoutes is the routing table bound (node.Limits.MaxRoutes) of
// a cluster's nodes, unless Config.NodeConfig sets another: room for
// twice the nodes a scenario may start.
const clusterMaxRoutes = 2 * MaxNodes

// maxClusterNodes is MaxNodes (a variable for a test).
var maxClusterNodes = MaxNodes

// AddNodes creates and starts the named nodes, in the order given. It
// checks the whole request before it starts any node: a name that is not
// valid (identity.ErrInvalidName), given twice or already in the cluster
// (ErrDuplicateNode), or more names than the cluster has room for under
// MaxNodes (ErrTooManyNodes) fails the call with nothing started or
// added. A node whose start fails stays a member, down (Restart starts
// it), and the names after it are not added. Once Close has begun it
// fails with an error wrapping net.ErrClosed: Close cancels the start
// under way, and the node is closed before Close returns.
func (c *Cluster) AddNodes(ctx context.Context, names ...string) error {
	ctx, end, err := c.begin(ctx, "add nodes")
	if err != nil {
		return err
	}
	defer end()
	c.mu.Lock()
	ms, err := c.reserveLocked(names)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.startAll(ctx, ms)
}

// reserveLocked checks the names of an AddNodes, each valid, given once,
// not a node of the cluster and all within MaxNodes, and adds them as
// members being started. c.mu is held, so the check and the additions
// are one step for calls running beside this one.
func (c *Cluster) reserveLocked(names []string) ([]*member, error) {
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if err := identity.ValidateName(name); err != nil {
			return nil, fmt.Errorf("add node: %w", err)
		}
		if seen[name] || c.members[name] != nil {
			return nil, fmt.Errorf("add node %s: %w", name, ErrDuplicateNode)
		}
		seen[name] = true
	}
	if len(c.members)+len(names) > maxClusterNodes {
		return nil, fmt.Errorf("add %d nodes: the cluster has %d of its bound of %d (MaxNodes): %w",
			len(names), len(c.members), maxClusterNodes, ErrTooManyNodes)
	}
	limit := eventLimit(len(c.members) + len(names))
	ms := make([]*member, len(names))
	for i, name := range names {
		ms[i] = &member{name: name, events: newEventLog(name, &c.names, limit), starting: true}
		c.members[name] = ms[i]
		c.order = append(c.order, name)
	}
	return ms, nil
}

// startAll starts the members reserveLocked added, in order. When a start
// fails, the members after it, never started, leave the cluster.
func (c *Cluster) startAll(ctx context.Context, ms []*member) error {
	for i, m := range ms {
		if err := c.start(ctx, m); err != nil {
			c.mu.Lock()
			defer c.mu.Unlock()
			gone := make(map[string]bool, len(ms)-i-1)
			for _, m := range ms[i+1:] {
				gone[m.name] = true
				delete(c.members, m.name)
				delete(c.gossipOf().gossip, m.name)
			}
			c.order = slices.DeleteFunc(c.order, func(name string) bool { return gone[name] })
			return err
		}
	}
	return nil
}

// begin registers an AddNodes or Restart call (op), which Close waits
// for, and returns ctx cancelled also when Close begins, and the end to
// call as the call returns. Once Close has begun it fails.
func (c *Cluster) begin(ctx context.Context, op string) (context.Context, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.openLocked(op); err != nil {
		return nil, nil, err
	}
	c.starts.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		c.starts.Done()
	}, nil
}

// start creates and starts the node of member m, which its caller marked
// starting.
func (c *Cluster) start(ctx context.Context, m *member) error {
	name := m.name
	defer func() {
		c.mu.Lock()
		m.starting = false
		c.mu.Unlock()
	}()
	cfg := node.Config{Name: name, Mesh: c.cfg.Mesh, GracePeriod: c.cfg.GracePeriod, Logger: c.cfg.Logger}
	c.mu.Lock()
	err := net.ErrClosed
	if !c.closed {
		err = c.be.configure(name, &cfg)
	}
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start node %s: %w", name, err)
	}
	// Every node must be able to hold a route to every other: the node's
	// default table bound (4096 destinations) is below a 5000-node
	// scenario, whose nodes would refuse the last origins and never
	// converge.
	cfg.Limits.MaxRoutes = clusterMaxRoutes
	if c.cfg.NodeConfig != nil {
		c.cfg.NodeConfig(&cfg)
	}
	n, err := node.New(cfg)
	if err != nil {
		if cfg.PacketConn != nil {
			cfg.PacketConn.Close()
		}
		return c.startFailed(name, err)
	}
	// Subscribed before Start, so that the count of reachable peers
	// misses no event.
	reach := new(atomic.Int64)
	stop, err := n.SubscribeFunc(func(ev node.Event) {
		switch ev.Kind {
		case node.PeerUp:
			reach.Add(1)
		case node.PeerDown:
			reach.Add(-1)
		}
		m.events.add(ev)
	})
	if err == nil {
		err = n.Start(ctx)
		if err != nil {
			stop()
		}
	}
	if err != nil {
		if cfg.PacketConn != nil {
			cfg.PacketConn.Close()
		}
		return c.startFailed(name, err)
	}
	// Close may have begun while the node started: it did not see the
	// node, so the node is closed here, before Close (which waits for
	// this call) goes on, and the cluster records nothing (Close releases
	// the node's socket, as it does every member's). Recording the node
	// and adding its sink to c.wg under c.mu while the cluster is open
	// puts both before Close takes its list of nodes, so Close closes the
	// node and waits for the sink.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		stop()
		if err := n.Close(); err != nil {
			c.cfg.Logger.Debug("closing a node started during Close", "node", name, "err", err)
		}
		return fmt.Errorf("start node %s: cluster closed: %w", name, net.ErrClosed)
	}
	m.n, m.dead, m.stop, m.reach = n, nil, stop, reach
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		serveSink(n)
	}()
	return nil
}

// startFailed is the error of a start that failed with err.
func (c *Cluster) startFailed(name string, err error) error {
	return c.failed(fmt.Errorf("start node %s: %w", name, err))
}

// failed is err, of an AddNodes or Restart, made to unwrap to
// net.ErrClosed too when the cluster closed meanwhile (Close cancels the
// call and releases a member's socket, either of which may be what failed
// it).
func (c *Cluster) failed(err error) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("cluster closed: %w: %w", net.ErrClosed, err)
	}
	return err
}

// Names lists the cluster's nodes in the order they were added.
func (c *Cluster) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// Node returns the running node called name (nil if unknown or down).
func (c *Cluster) Node(name string) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.members[name]; m != nil {
		return m.n
	}
	return nil
}

// openLocked fails, for op, once Close has begun: the cluster's nodes and
// network are going or gone, so nothing op would change is left.
func (c *Cluster) openLocked(op string) error {
	if c.closed {
		return fmt.Errorf("%s: cluster closed: %w", op, net.ErrClosed)
	}
	return nil
}

// live returns the running node called name or an error saying why not
// (net.ErrClosed once Close has begun).
func (c *Cluster) live(name string) (*node.Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[name]
	switch {
	case c.closed:
		return nil, c.openLocked("node " + name)
	case m == nil:
		return nil, fmt.Errorf("node %s: %w", name, ErrUnknownNode)
	case m.n == nil:
		return nil, fmt.Errorf("node %s: %w", name, ErrNodeDown)
	}
	return m.n, nil
}

// liveTo returns the running node from, as live does, once it has
// checked that to is a node of the cluster (ErrUnknownNode), running or
// not: the source and destination of a route.
func (c *Cluster) liveTo(from, to string) (*node.Node, error) {
	n, err := c.live(from)
	if err != nil {
		return nil, err
	}
	if err := c.known(to); err != nil {
		return nil, err
	}
	return n, nil
}

// Link adds the edge a–b to the topology with the given link parameters
// and makes a dial b now; a keeps the link up (redialling while b is
// unreachable). Linking an existing edge heals it and updates its
// parameters.
func (c *Cluster) Link(ctx context.Context, a, b string, p LinkParams) error {
	if a == b {
		return fmt.Errorf("link %s-%s: a node cannot link to itself: %w", a, b, ErrInvalidArgument)
	}
	if err := p.validate(); err != nil {
		return fmt.Errorf("link %s-%s: %w", a, b, err)
	}
	for _, name := range []string{a, b} {
		if _, err := c.live(name); err != nil {
			return fmt.Errorf("link %s-%s: %w", a, b, err)
		}
	}
	c.mu.Lock()
	if err := c.be.setParams(a, b, p); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("link %s-%s: %w", a, b, err)
	}
	e := c.edges[mkpair(a, b)]
	if e == nil {
		e = &edge{a: a, b: b}
		c.edges[mkpair(a, b)] = e
	}
	e.params, e.cut = p, false
	c.be.block(a, b, false)
	dialer, addr := e.a, c.be.addr(e.b)
	c.mu.Unlock()
	n, err := c.live(dialer)
	if err == nil {
		err = n.Link(ctx, addr)
	}
	if err != nil {
		return fmt.Errorf("link %s-%s: %w", a, b, err)
	}
	return nil
}

// Unlink removes the edge a–b for good: its dialling node drops it
// (node.Node.Unlink: it stops redialling and closes the link, so the other
// end hears of it at once) and Heal does not restore it (Link does).
func (c *Cluster) Unlink(a, b string) error {
	c.mu.Lock()
	if err := c.openLocked(fmt.Sprintf("unlink %s-%s", a, b)); err != nil {
		c.mu.Unlock()
		return err
	}
	e := c.edges[mkpair(a, b)]
	if e == nil {
		c.mu.Unlock()
		return fmt.Errorf("unlink %s-%s: %w", a, b, ErrNoEdge)
	}
	delete(c.edges, mkpair(a, b))
	dialer, addr := e.a, c.be.addr(e.b)
	c.mu.Unlock()
	n, err := c.live(dialer)
	if err != nil {
		return nil // a killed dialler keeps nothing, and Restart redials only edges
	}
	// A dialler restarted while the edge was cut, or whose first dial
	// failed, does not keep it: nothing to drop.
	if err := n.Unlink(addr); err != nil && !errors.Is(err, node.ErrNotLinked) {
		return fmt.Errorf("unlink %s-%s: %w", a, b, err)
	}
	return nil
}

// SetLink changes the latency and loss of the edge a–b.
func (c *Cluster) SetLink(a, b string, p LinkParams) error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("set %s-%s: %w", a, b, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.openLocked(fmt.Sprintf("set %s-%s", a, b)); err != nil {
		return err
	}
	e := c.edges[mkpair(a, b)]
	if e == nil {
		return fmt.Errorf("set %s-%s: %w", a, b, ErrNoEdge)
	}
	if err := c.be.setParams(a, b, p); err != nil {
		return fmt.Errorf("set %s-%s: %w", a, b, err)
	}
	e.params = p
	return nil
}

// closeWorkers bounds the nodes a Cluster closes at once (a variable for
// a test that closes them one at a time).
var closeWorkers = 64

// Close closes every node and the simulated network. The cluster goes away
// as a whole: the network stops carrying traffic first without telling any
// node (memlink.Network.Halt on mem; on QUIC packets stop), so no node
// learns of another's departure and none re-routes around the nodes that
// close before it; then the nodes close, closeWorkers at a time. An
// AddNodes or Restart under way when Close begins is cancelled and Close
// waits for it to return, its node closed (so Config.NodeConfig must not
// wait for Close). Event
// recording (Events) ends when Close begins. On an ordered cluster the
// network stops only once the cluster is quiet at the current virtual
// instant (memlink.Network.Quiesce): the ends of circuits a step left
// crossing the relays have reached them, so what is left to close, and
// how long that takes in virtual time, does not depend on how far the
// goroutines had run when Close was called. Close again returns nil once
// the first Close has returned.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.down
		return nil
	}
	c.closed = true
	defer close(c.down)
	var nodes []*node.Node
	for _, name := range c.order {
		m := c.members[name]
		if m.stop != nil {
			m.stop()
		}
		if m.n != nil {
			nodes = append(nodes, m.n)
		}
	}
	c.mu.Unlock()
	c.end()
	c.starts.Wait()
	c.kills.Wait()
	if c.quiesce != nil {
		c.quiesce() // not under c.mu: the goroutines it waits for may take it
	}
	c.mu.Lock()
	c.be.shutdown()
	c.mu.Unlock()
	errs := make([]error, len(nodes))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(closeWorkers, len(nodes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if c.closing != nil {
					c.closing(nodes[i].Name())
				}
				if err := nodes[i].Close(); err != nil {
					errs[i] = fmt.Errorf("close node %s: %w", nodes[i].Name(), err)
				}
			}
		}()
	}
	for i := range nodes {
		next <- i
	}
	close(next)
	wg.Wait()
	c.wg.Wait()
	c.lingerGossip()
	c.mu.Lock()
	for _, name := range c.order {
		c.be.release(name)
	}
	c.mu.Unlock()
	c.be.close()
	return errors.Join(errs...)
}

// edgeParams returns the link parameters of the edge a–b.
func (c *Cluster) edgeParams(a, b string) (LinkParams, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.edges[mkpair(a, b)]
	if e == nil {
		return LinkParams{}, fmt.Errorf("edge %s-%s: %w", a, b, ErrNoEdge)
	}
	return e.params, nil
}
