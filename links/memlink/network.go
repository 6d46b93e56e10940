package memlink

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// ErrUnreachable: a dial found no live transport of that name, or the
// network is cut between the two nodes.
var ErrUnreachable = errors.New("memlink: node unreachable")

// Default limits.
const (
	DefaultStreamBuffer = 256 << 10
	DefaultControlQueue = 256
	// DefaultControlBytes is the initial flow-control window of a QUIC
	// link's control stream (links: 512 KiB).
	DefaultControlBytes = 512 << 10
	DefaultMaxStreams   = 4096
	// MaxStreamBuffer bounds Config.StreamBuffer.
	MaxStreamBuffer = 64 << 20
)

// Config configures a Network. The zero value means the defaults.
type Config struct {
	// StreamBuffer is the bytes buffered per stream and direction before a
	// writer blocks. Default DefaultStreamBuffer; at most MaxStreamBuffer.
	StreamBuffer int
	// ControlQueue is the number of routing payloads queued per link
	// direction before SendRouting drops with links.ErrQueueFull.
	// Default DefaultControlQueue.
	ControlQueue int
	// ControlBytes bounds the bytes of the routing payloads queued per link
	// direction: a payload that would take them beyond it is dropped with
	// links.ErrQueueFull, as ControlQueue's would, unless the queue is
	// empty (a payload larger than the bound passes alone). It bounds the
	// simulator's memory and is stricter than a QUIC link, which queues
	// its control stream's flow-control window (up to 4 MiB) and then
	// links.DefaultControlBytes (4 MiB) in at most 256 frames before it
	// drops. Default DefaultControlBytes.
	ControlBytes int
	// DetectDelay is how long after Cut, Isolate or Kill a link is reported
	// down at the surviving ends. Data stops flowing at once. Default 0:
	// immediately.
	DetectDelay time.Duration
	// Settle, when set, makes the network ordered: every Handler call of
	// every link is made from one goroutine, in an order fixed by the
	// calls' due times and the links' names (not by how the senders'
	// goroutines were scheduled), and Settle is called after each call
	// and before the first. In a testing/synctest bubble Settle is
	// synctest.Wait: each call's consequences then run to completion
	// before the next call, which makes runs repeatable. Only on an
	// ordered network do SetPath's delay and loss apply.
	Settle func()
	// Seed seeds the loss of an ordered network's routing payloads: one
	// random stream per link and direction.
	Seed uint64
}

func (c Config) withDefaults() Config {
	if c.StreamBuffer <= 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
	if c.StreamBuffer > MaxStreamBuffer {
		c.StreamBuffer = MaxStreamBuffer
	}
	if c.ControlQueue <= 0 {
		c.ControlQueue = DefaultControlQueue
	}
	if c.ControlBytes <= 0 {
		c.ControlBytes = DefaultControlBytes
	}
	if c.DetectDelay < 0 {
		c.DetectDelay = 0
	}
	return c
}

// Network is a simulated network of transports addressed by node name. It
// is safe for concurrent use.
type Network struct {
	cfg Config

	mu         sync.Mutex
	transports map[string]*Transport
	cuts       map[pair]bool
	isolated   map[string]bool
	costs      map[pair]links.Cost
	paths      map[pair]path
	linkNo     map[pair]uint64 // links made between the pair so far
	halted     bool

	sched *scheduler // set on an ordered network

	inFlight routingLoad // of every link end, for RoutingLoad
}

// routingLoad counts the routing payloads of a network's links.
type routingLoad struct {
	payloads, bytes, peakBytes, dropped atomic.Int64
}

// add counts n payloads of b bytes more (fewer when negative) in flight.
func (l *routingLoad) add(n, b int) {
	l.payloads.Add(int64(n))
	now := l.bytes.Add(int64(b))
	for {
		peak := l.peakBytes.Load()
		if now <= peak || l.peakBytes.CompareAndSwap(peak, now) {
			return
		}
	}
}

// RoutingLoad is what a network's links hold of routing payloads.
type RoutingLoad struct {
	// Payloads and Bytes are the routing payloads queued on the links
	// now, sent and not yet handed to the receiving Handler.
	Payloads, Bytes int64
	// PeakBytes is the most Bytes has been since the network was made.
	PeakBytes int64
	// Dropped counts the payloads SendRouting refused with
	// links.ErrQueueFull (Config.ControlQueue, Config.ControlBytes).
	Dropped int64
}

// RoutingLoad returns the routing payloads the network's links hold now
// and have dropped so far.
func (n *Network) RoutingLoad() RoutingLoad {
	return RoutingLoad{
		Payloads:  n.inFlight.payloads.Load(),
		Bytes:     n.inFlight.bytes.Load(),
		PeakBytes: n.inFlight.peakBytes.Load(),
		Dropped:   n.inFlight.dropped.Load(),
	}
}

type pair struct{ a, b string }

func mkpair(a, b string) pair {
	if b < a {
		a, b = b, a
	}
	return pair{a, b}
}

// NewNetwork returns an empty network.
func NewNetwork(cfg Config) *Network {
	n := &Network{
		cfg:        cfg.withDefaults(),
		transports: make(map[string]*Transport),
		cuts:       make(map[pair]bool),
		isolated:   make(map[string]bool),
		costs:      make(map[pair]links.Cost),
		paths:      make(map[pair]path),
		linkNo:     make(map[pair]uint64),
	}
	if cfg.Settle != nil {
		n.sched = &scheduler{settle: cfg.Settle, wake: make(chan struct{}, 1)}
	}
	return n
}

// SetPath sets the one-way delay of the routing payloads between a and b
// and the probability that one is lost, in both directions, now and for
// links made later, on an ordered network (Config.Settle); elsewhere it
// has no effect. A lost payload is not dropped: links carry routing
// reliably, in order, as the QUIC links' control stream does. It arrives
// one retransmission delay later (four times the delay, at least 1 ms),
// drawn again for loss, and the payloads behind it wait for it. Streams
// are not delayed.
func (n *Network) SetPath(a, b string, delay time.Duration, loss float64) {
	p := path{delay: max(delay, 0), loss: min(max(loss, 0), 0.99)}
	n.mu.Lock()
	n.paths[mkpair(a, b)] = p
	eps := n.linksBetween(a, b)
	n.mu.Unlock()
	for _, ep := range eps {
		for _, e := range []*eventQueue{&ep.events, &ep.peer.events} {
			e.mu.Lock()
			e.path = p
			e.mu.Unlock()
		}
	}
}

// reachable reports whether a and b may exchange data. n.mu is held.
func (n *Network) reachable(a, b string) bool {
	return !n.cuts[mkpair(a, b)] && !n.isolated[a] && !n.isolated[b]
}

// Halt stops the whole network at once for good, without telling either
// end of any link: every link stops carrying data and routing payloads at
// once, as after Cut, but no end is ever reported down by the network,
// and dials fail with ErrUnreachable. A transport's Close after Halt still
// takes its own ends down (its Handler gets LinkDown, wrapping
// links.ErrClosed) but its peers hear nothing, as if the goodbye were lost:
// nodes closing one after another then do not each make the survivors
// re-route around them. Kill, Cut and Isolate after Halt report nothing
// to the surviving ends either. Meant for taking a whole simulated network
// down; Halt cannot be undone.
func (n *Network) Halt() {
	n.mu.Lock()
	n.halted = true
	var eps []*endpoint
	for _, t := range n.transports {
		for _, ep := range t.links {
			eps = append(eps, ep)
		}
	}
	n.mu.Unlock()
	for _, ep := range eps {
		ep.conn.severed.Store(true)
	}
}

// Quiesce returns once the network is quiet at the current instant. On an
// ordered network (Config.Settle) that is when every Handler call due by
// now has been made and Config.Settle returned after the last: in a
// testing/synctest bubble, every goroutine of the bubble but the caller is
// then durably blocked, whatever work was still running when Quiesce was
// called (a stream's end crossing a relay, say) ran to its end, and the
// clock did not move. Call it from a goroutine of the bubble; it must not
// run while that goroutine holds a lock another goroutine of the bubble
// waits for. Elsewhere it returns at once.
//
// Halt after Quiesce stops the network in a state that does not depend on
// how the Go scheduler interleaved the goroutines before it.
func (n *Network) Quiesce() {
	if n.sched != nil {
		n.sched.quiesce()
	}
}

// costOf is the configured cost between a and b. n.mu is held.
func (n *Network) costOf(a, b string) links.Cost {
	if c, ok := n.costs[mkpair(a, b)]; ok {
		return c
	}
	return links.MinCost
}

// quality is what a link of the given cost reports: one cost unit is 10 µs
// of round-trip time.
func quality(c links.Cost) links.Quality {
	return links.Quality{RTT: time.Duration(c) * 10 * time.Microsecond, Cost: c}
}

// SetCost sets the cost of the a–b link in both directions, now and for
// links made later. Live links report it through Handler.CostChanged and
// Quality. A cost below links.MinCost is raised to it.
func (n *Network) SetCost(a, b string, cost links.Cost) {
	cost = max(cost, links.MinCost)
	n.mu.Lock()
	n.costs[mkpair(a, b)] = cost
	eps := n.linksBetween(a, b)
	n.mu.Unlock()
	for _, ep := range eps {
		ep.setQuality(quality(cost))
		ep.peer.setQuality(quality(cost))
	}
}

// Cut kills the link between a and b (reported down after DetectDelay) and
// refuses new dials between them until Heal.
func (n *Network) Cut(a, b string) {
	n.mu.Lock()
	n.cuts[mkpair(a, b)] = true
	eps := n.linksBetween(a, b)
	n.mu.Unlock()
	n.sever(eps, fmt.Sprintf("network cut between %s and %s", a, b), false)
}

// Heal lets a and b dial each other again after Cut. It does not undo
// Isolate; see Rejoin.
func (n *Network) Heal(a, b string) {
	n.mu.Lock()
	delete(n.cuts, mkpair(a, b))
	n.mu.Unlock()
}

// Isolate cuts a from every node until Rejoin(a).
func (n *Network) Isolate(a string) {
	n.mu.Lock()
	n.isolated[a] = true
	var eps []*endpoint
	if t := n.transports[a]; t != nil {
		eps = t.linkList()
	}
	n.mu.Unlock()
	n.sever(eps, fmt.Sprintf("node %s isolated", a), false)
}

// Rejoin undoes Isolate(a).
func (n *Network) Rejoin(a string) {
	n.mu.Lock()
	delete(n.isolated, a)
	n.mu.Unlock()
}

// Kill simulates the death of node a: its transport stops answering, its
// own links end at once, and its peers see their links lost (wrapping
// links.ErrLinkLost) after DetectDelay. A new transport may then take the
// name a (a restart).
func (n *Network) Kill(a string) {
	n.mu.Lock()
	t := n.transports[a]
	if t == nil {
		n.mu.Unlock()
		return
	}
	delete(n.transports, a)
	t.closed = true
	eps := t.linkList()
	n.mu.Unlock()
	n.sever(eps, fmt.Sprintf("node %s died", a), true)
}

// linksBetween returns the local ends of the live links between a and b.
// n.mu is held.
func (n *Network) linksBetween(a, b string) []*endpoint {
	var eps []*endpoint
	if t := n.transports[a]; t != nil {
		if ep := t.links[b]; ep != nil {
			eps = append(eps, ep)
		}
	}
	return eps
}

// sever stops data on each link at once and reports both ends lost after
// DetectDelay, or the ends in eps at once when localNow (a dead node knows
// it is dead).
// After Halt only the dead node's own ends are reported.
func (n *Network) sever(eps []*endpoint, why string, localNow bool) {
	n.mu.Lock()
	halted := n.halted
	n.mu.Unlock()
	for _, ep := range eps {
		ep.conn.severed.Store(true)
		err := fmt.Errorf("link %s–%s: %s: %w", ep.t.name, ep.peerName, why, links.ErrLinkLost)
		if halted {
			if localNow {
				ep.lose(err)
			}
			continue
		}
		n.loseAfter(ep, err, localNow)
		n.loseAfter(ep.peer, err, false)
	}
}

func (n *Network) loseAfter(ep *endpoint, err error, now bool) {
	if now || n.cfg.DetectDelay == 0 {
		ep.lose(err)
		return
	}
	time.AfterFunc(n.cfg.DetectDelay, func() { ep.lose(err) })
}
