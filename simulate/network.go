package simulate

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// LinkParams shapes the packets between two nodes of the QUIC backend.
// The zero value is an ideal link: no delay, no loss.
type LinkParams struct {
	// Latency is the one-way delay of every packet in each direction (the
	// round-trip time is twice this).
	Latency time.Duration
	// Loss is the probability, 0 to 1, that a packet is dropped, drawn
	// independently for each packet and direction.
	Loss float64
	// Bandwidth, Queue, Jitter, Reorder and Duplicate shape the packets
	// of the QUIC backend further (see shape.go); zero means none.
	Shape
}

// validate checks p's values; its error wraps ErrInvalidArgument.
func (p LinkParams) validate() error {
	var err error
	switch {
	case p.Latency < 0:
		err = fmt.Errorf("latency %v is negative", p.Latency)
	case !(p.Loss >= 0 && p.Loss <= 1):
		err = fmt.Errorf("loss %v is not between 0 and 1", p.Loss)
	default:
		err = p.Shape.validate()
	}
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalidArgument)
	}
	return nil
}

// inboxSize bounds the packets queued at a receiver (a socket buffer):
// beyond it packets are dropped, as a full UDP socket drops them.
const inboxSize = 2048

// packetNet is a simulated datagram network: every node owns one address
// and one packetConn, and packets between two nodes are delayed, dropped
// or blocked according to the pair's parameters.
type packetNet struct {
	mu      sync.Mutex
	conns   map[string]*packetConn // address → the live socket bound to it
	names   map[string]string      // address → node name
	params  map[pair]LinkParams
	blocked map[pair]bool
	down    map[string]bool // nodes whose packets all vanish
	// inflight holds each path's (from, to node) packets in flight and its
	// transmitter's state.
	inflight map[[2]string]*pathState
	// seed derives rngs, one random stream per path (from, to node), so
	// the loss pattern of a path depends on the seed and on that path's
	// packets alone, not on how other paths' packets interleave with them.
	seed   uint64
	rngs   map[[2]string]*rand.Rand
	timers sync.WaitGroup // packets in flight
	closed bool
}

// pair is an unordered pair of node names.
type pair struct{ a, b string }

func mkpair(a, b string) pair {
	if a > b {
		a, b = b, a
	}
	return pair{a, b}
}

func newPacketNet(seed uint64) *packetNet {
	return &packetNet{
		conns:    map[string]*packetConn{},
		names:    map[string]string{},
		params:   map[pair]LinkParams{},
		blocked:  map[pair]bool{},
		down:     map[string]bool{},
		inflight: map[[2]string]*pathState{},
		seed:     seed,
		rngs:     map[[2]string]*rand.Rand{},
	}
}

// pathRand returns the random stream of the path from → to, derived from
// the network's seed and the two names. n.mu is held.
func (n *packetNet) pathRand(from, to string) *rand.Rand {
	key := [2]string{from, to}
	r := n.rngs[key]
	if r == nil {
		h := fnv.New64a()
		h.Write([]byte(from))
		h.Write([]byte{0})
		h.Write([]byte(to))
		r = rand.New(rand.NewPCG(n.seed, h.Sum64()))
		n.rngs[key] = r
	}
	return r
}

// listen binds a new socket for node name at addr, replacing a closed one
// (a restarted node keeps its address).
func (n *packetNet) listen(name string, addr *net.UDPAddr) (*packetConn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := addr.String()
	if n.closed {
		return nil, fmt.Errorf("listen %s for %s: %w", key, name, net.ErrClosed)
	}
	if old := n.conns[key]; old != nil && !old.isClosed() {
		return nil, fmt.Errorf("listen %s for %s: address in use", key, name)
	}
	c := &packetConn{net: n, name: name, addr: addr, in: make(chan packet, inboxSize),
		closed: make(chan struct{}), dlChanged: make(chan struct{})}
	n.conns[key] = c
	n.names[key] = name
	return c, nil
}

func (n *packetNet) setParams(a, b string, p LinkParams) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.params[mkpair(a, b)] = p
}

func (n *packetNet) setBlocked(a, b string, blocked bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if blocked {
		n.blocked[mkpair(a, b)] = true
	} else {
		delete(n.blocked, mkpair(a, b))
	}
}

func (n *packetNet) setDown(name string, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if down {
		n.down[name] = true
	} else {
		delete(n.down, name)
	}
}

// send routes one packet from src to the socket at dst.
func (n *packetNet) send(src *packetConn, b []byte, dst net.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	to := n.conns[dst.String()]
	if n.closed || to == nil {
		return
	}
	from, name := src.name, to.name
	p := mkpair(from, name)
	if n.down[from] || n.down[name] || n.blocked[p] {
		return
	}
	n.schedule(from, name, n.params[p], b, src.addr, to)
}

// fifo holds the packets in flight on one path, oldest first.
type fifo struct {
	mu sync.Mutex
	q  []packet
}

func (f *fifo) push(p packet) {
	f.mu.Lock()
	f.q = append(f.q, p)
	f.mu.Unlock()
}

func (f *fifo) empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.q) == 0
}

func (f *fifo) pop() packet {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.q[0]
	f.q[0] = packet{}
	f.q = f.q[1:]
	return p
}

// shutdown drops every packet from now on, those in flight included.
func (n *packetNet) shutdown() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
}

// close drops every packet still in flight and waits for their timers.
func (n *packetNet) close() {
	n.shutdown()
	n.timers.Wait()
}

type packet struct {
	data []byte
	from net.Addr
}

// packetConn is one node's socket on a packetNet. It implements
// net.PacketConn with working read deadlines, as quic-go requires.
type packetConn struct {
	net  *packetNet
	name string
	addr *net.UDPAddr
	in   chan packet

	mu           sync.Mutex
	readDeadline time.Time
	dlChanged    chan struct{} // closed and replaced when the deadline changes
	closed       chan struct{}
	closeOnce    sync.Once
}

var _ net.PacketConn = (*packetConn)(nil)

func (c *packetConn) deliver(p packet) {
	select {
	case <-c.closed:
	case c.in <- p:
	default: // receive buffer full: dropped
	}
}

func (c *packetConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// ReadFrom returns the next packet, honouring the read deadline.
func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl, changed := c.readDeadline, c.dlChanged
		c.mu.Unlock()
		var expired <-chan time.Time
		stop := func() bool { return false }
		if !dl.IsZero() {
			d := time.Until(dl)
			if d <= 0 {
				return 0, nil, c.opErr("read", os.ErrDeadlineExceeded)
			}
			t := time.NewTimer(d)
			stop, expired = t.Stop, t.C
		}
		select {
		case p := <-c.in:
			stop()
			return copy(b, p.data), p.from, nil
		case <-c.closed:
			stop()
			return 0, nil, c.opErr("read", net.ErrClosed)
		case <-changed:
			stop()
		case <-expired:
		}
	}
}

// WriteTo sends one packet; like UDP it never reports loss.
func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.isClosed() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	c.net.send(c, b, addr)
	return len(b), nil
}

func (c *packetConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "simudp", Addr: c.addr, Err: err}
}

// Close unbinds the socket; a later listen may reuse its address.
func (c *packetConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *packetConn) LocalAddr() net.Addr { return c.addr }

func (c *packetConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *packetConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDeadline = t
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
	return nil
}

// SetWriteDeadline is accepted and ignored: writes never block.
func (c *packetConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadBuffer and SetWriteBuffer are accepted and ignored (the receive
// buffer holds inboxSize packets), so quic-go does not warn.
func (c *packetConn) SetReadBuffer(int) error  { return nil }
func (c *packetConn) SetWriteBuffer(int) error { return nil }
