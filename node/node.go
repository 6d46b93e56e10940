package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

var errNotYet = errors.New("not implemented yet")

// Node is one mesh node.
type Node struct {
	cfg Config
}

// New validates cfg and returns a node; Start brings it up.
func New(cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Node{cfg: cfg}, nil
}

// Start opens the transport, links to static peers and starts routing.
func (n *Node) Start(ctx context.Context) error { return errNotYet }

// Close says goodbye to neighbours, stops accepting, lets circuits finish
// within the grace period, then resets the rest.
func (n *Node) Close() error { return nil }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr is the UDP address of the node's links.
func (n *Node) Addr() net.Addr { return nil }

// Dial opens a circuit to service on peer and returns once the destination
// accepted.
func (n *Node) Dial(ctx context.Context, peer, service string) (net.Conn, error) {
	return n.DialWith(ctx, peer, service, DialOptions{})
}

// DialWith is Dial with options.
func (n *Node) DialWith(ctx context.Context, peer, service string, o DialOptions) (Conn, error) {
	return nil, errNotYet
}

// Listen publishes service on this node.
func (n *Node) Listen(service string) (net.Listener, error) { return nil, errNotYet }

// Link keeps a static link to the node at addr.
func (n *Node) Link(ctx context.Context, addr string) error { return errNotYet }

// Peers lists every node known to routing, sorted by name.
func (n *Node) Peers() []PeerInfo { return nil }

// Links lists live links, sorted by peer.
func (n *Node) Links() []LinkInfo { return nil }

// Status summarises the node.
func (n *Node) Status() Status { return Status{} }

// Services lists the published services, sorted.
func (n *Node) Services() []string { return nil }

// Subscribe returns a channel of events with room for buf events and a
// cancel function. Events that do not fit are dropped (counted in metrics).
func (n *Node) Subscribe(buf int) (<-chan Event, func()) { return nil, func() {} }

// MetricsHandler serves the node's Prometheus metrics.
func (n *Node) MetricsHandler() http.Handler { return http.NotFoundHandler() }

// PingResult is one echo round trip over a fresh circuit.
type PingResult struct {
	Open time.Duration // time to open the circuit (one round trip)
	RTT  time.Duration // time for one byte to come back over the open circuit
	Path []string      // nodes crossed, source first
}

// Ping opens a circuit to peer's echo service, records the path and times
// one echo.
func (n *Node) Ping(ctx context.Context, peer string) (PingResult, error) {
	return PingResult{}, errNotYet
}
