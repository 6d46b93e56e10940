package memlink

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Addr is a node's address on a Network: its name.
type Addr string

// Network returns "memlink".
func (Addr) Network() string  { return "memlink" }
func (a Addr) String() string { return string(a) }

// TransportConfig configures one node's transport.
type TransportConfig struct {
	// Name is the node name and its address (identity.ValidateName rules).
	Name string
	// Mesh is the mesh name; peers of another mesh are refused.
	Mesh string
	// Role and Features are announced in the hello.
	Role     links.Role
	Features uint64
	// Handler receives link events; nil discards them.
	Handler links.Handler
	// MaxStreams bounds the streams each peer may have open towards this
	// node on one link; a peer's OpenStream waits for a free slot.
	// Default DefaultMaxStreams.
	MaxStreams int
}

// Transport is one node's links.Transport on a Network.
type Transport struct {
	n    *Network
	cfg  TransportConfig
	name string

	// drains counts the goroutines delivering Handler calls for this
	// transport's links; Close waits for them.
	drains drainCount

	// Guarded by n.mu.
	closed bool
	links  map[string]*endpoint
}

var _ links.Transport = (*Transport)(nil)

// Transport registers a node on the network. The name must be free (a
// closed or killed transport frees its name).
func (n *Network) Transport(cfg TransportConfig) (*Transport, error) {
	if err := identity.ValidateName(cfg.Name); err != nil {
		return nil, fmt.Errorf("memlink transport: node name: %w", err)
	}
	if err := identity.ValidateName(cfg.Mesh); err != nil {
		return nil, fmt.Errorf("memlink transport %q: mesh name: %w", cfg.Name, err)
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.Handler == nil {
		cfg.Handler = nopHandler{}
	}
	t := &Transport{n: n, cfg: cfg, name: cfg.Name, links: make(map[string]*endpoint)}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.transports[cfg.Name] != nil {
		return nil, fmt.Errorf("memlink transport %q: name in use", cfg.Name)
	}
	n.transports[cfg.Name] = t
	return t, nil
}

// Dial links to the node named addr, or returns the existing link to it.
func (t *Transport) Dial(ctx context.Context, addr string) (links.Link, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	n := t.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("dial %s from %s: transport closed: %w", addr, t.name, links.ErrClosed)
	}
	if ep := t.links[addr]; ep != nil {
		return ep, nil
	}
	peer := n.transports[addr]
	switch {
	case addr == t.name:
		return nil, fmt.Errorf("dial %s: cannot link to itself: %w", addr, links.ErrRefused)
	case n.halted:
		return nil, fmt.Errorf("dial %s from %s: network halted: %w", addr, t.name, ErrUnreachable)
	case peer == nil:
		return nil, fmt.Errorf("dial %s from %s: no such node: %w", addr, t.name, ErrUnreachable)
	case !n.reachable(t.name, addr):
		return nil, fmt.Errorf("dial %s from %s: network cut: %w", addr, t.name, ErrUnreachable)
	case peer.cfg.Mesh != t.cfg.Mesh:
		return nil, fmt.Errorf("dial %s from %s: peer is in mesh %q, not %q: %w", addr, t.name, peer.cfg.Mesh, t.cfg.Mesh, links.ErrRefused)
	}
	local, remote := newConn(t, peer, quality(n.costOf(t.name, addr)), time.Now())
	if links.IsStatic(ctx) {
		remote.peerFeatures |= links.FeatureStatic
	}
	t.links[addr] = local
	peer.links[t.name] = remote
	local.events.post(event{kind: evUp})
	remote.events.post(event{kind: evUp})
	return local, nil
}

// LocalAddr is the node name.
func (t *Transport) LocalAddr() net.Addr { return Addr(t.name) }

// Links returns the live links, sorted by peer name.
func (t *Transport) Links() []links.Link {
	t.n.mu.Lock()
	eps := t.linkList()
	t.n.mu.Unlock()
	out := make([]links.Link, len(eps))
	for i, ep := range eps {
		out[i] = ep
	}
	return out
}

// linkList returns the links sorted by peer. n.mu is held.
func (t *Transport) linkList() []*endpoint {
	eps := make([]*endpoint, 0, len(t.links))
	for _, ep := range t.links {
		eps = append(eps, ep)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].peerName < eps[j].peerName })
	return eps
}

// Close closes every link with a goodbye, frees the name and waits until
// the Handler has received every call, LinkDown included: no Handler call
// happens after Close returns. Close must not be called from a Handler.
func (t *Transport) Close() error {
	n := t.n
	n.mu.Lock()
	t.closed = true
	if n.transports[t.name] == t {
		delete(n.transports, t.name)
	}
	eps := t.linkList()
	n.mu.Unlock()
	for _, ep := range eps {
		ep.Close("transport closed")
	}
	t.drains.Wait()
	return nil
}

// forget removes ep from its transport's table. It takes n.mu.
func (t *Transport) forget(ep *endpoint) {
	t.n.mu.Lock()
	if t.links[ep.peerName] == ep {
		delete(t.links, ep.peerName)
	}
	t.n.mu.Unlock()
}

// drainCount counts running event goroutines. Unlike a sync.WaitGroup it
// may go up again while someone waits: a peer closing at the same moment
// posts LinkDown to this transport's links while Close waits.
type drainCount struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
}

func (d *drainCount) Add(delta int) {
	d.mu.Lock()
	d.n += delta
	if d.n == 0 && d.cond != nil {
		d.cond.Broadcast()
	}
	d.mu.Unlock()
}

func (d *drainCount) Done() { d.Add(-1) }

// Wait returns once no event goroutine runs.
func (d *drainCount) Wait() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cond == nil {
		d.cond = sync.NewCond(&d.mu)
	}
	for d.n > 0 {
		d.cond.Wait()
	}
}

type nopHandler struct{}

func (nopHandler) LinkUp(links.Link)                     {}
func (nopHandler) Routing(links.Link, []byte)            {}
func (nopHandler) CostChanged(links.Link, links.Quality) {}
func (nopHandler) LinkDown(links.Link, error)            {}
