package node

import (
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// Backlog bounds circuits accepted by the node but not yet by the
// service's Accept; beyond it new circuits are refused as overloaded.
const Backlog = 128

// maxServiceName bounds a service name.
const maxServiceName = 255

// listener is a service's net.Listener.
type listener struct {
	n       *Node
	service string
	backlog chan net.Conn // *trackedConn or *resumableConn
	// handle, for a service the node answers itself, serves each circuit
	// on the goroutine that delivered it (serve): nothing is queued.
	handle func(net.Conn)
	mu     sync.Mutex
	closed bool
	done   chan struct{}
}

// Listen publishes service on this node: circuits addressed to
// (this node, service) are returned by the listener's Accept. Closing the
// listener unpublishes the service; circuits already accepted stay open.
func (n *Node) Listen(service string) (net.Listener, error) {
	l, err := n.listen(service, nil)
	if err != nil {
		return nil, err // not a nil *listener in a non-nil interface
	}
	return l, nil
}

// listen is Listen for a service whose circuits handle serves, when set.
func (n *Node) listen(service string, handle func(net.Conn)) (*listener, error) {
	if service == "" || len(service) > maxServiceName {
		return nil, fmt.Errorf("listen %q: %w", service, ErrInvalidService)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stateClosing || n.state == stateClosed {
		return nil, fmt.Errorf("listen %q: %w", service, ErrClosed)
	}
	if n.services[service] != nil {
		return nil, fmt.Errorf("listen %q: %w", service, ErrServiceInUse)
	}
	l := &listener{n: n, service: service, handle: handle, done: make(chan struct{})}
	if handle == nil {
		l.backlog = make(chan net.Conn, Backlog)
	}
	n.services[service] = l
	return l, nil
}

func (n *Node) service(name string) *listener {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.services[name]
}

// Services lists the published services, sorted.
func (n *Node) Services() []string {
	n.mu.Lock()
	out := make([]string, 0, len(n.services))
	for s := range n.services {
		out = append(out, s)
	}
	n.mu.Unlock()
	sort.Strings(out)
	return out
}

func (l *listener) hasRoom() bool { return l.handle != nil || len(l.backlog) < cap(l.backlog) }

// serve hands an accepted circuit to the service: its handler runs on the
// calling goroutine (the one that read the open, already owned by the
// node), which closes the circuit after it, else the circuit waits in the
// backlog for Accept. A built-in echo thus answers an open's early data
// without two goroutine hand-offs (to Accept, and to a goroutine per
// circuit) between its arrival and its echo. The circuit is aborted when
// the backlog is full or the listener closed.
func (l *listener) serve(c net.Conn) {
	if l.handle != nil && l.open() {
		defer c.Close()
		l.handle(c)
		return
	}
	if l.handle != nil || !l.enqueue(c) {
		c.(interface{ abort() }).abort()
	}
}

// open reports whether the listener is not closed.
func (l *listener) open() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

// enqueue hands an accepted circuit to Accept; false when the backlog is
// full or the listener closed.
func (l *listener) enqueue(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	select {
	case l.backlog <- c:
		return true
	default:
		return false
	}
}

// Accept returns the next circuit to the service. Its RemoteAddr names
// the source node, authenticated by the circuit's end-to-end handshake
// (unless the node runs with E2EOff and the circuit came in the clear).
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.backlog:
		return c, nil
	case <-l.done:
		// Drain what raced in before the close.
		select {
		case c := <-l.backlog:
			return c, nil
		default:
		}
		return nil, fmt.Errorf("accept on %s/%s: %w", l.n.cfg.Name, l.service, net.ErrClosed)
	}
}

// Close unpublishes the service and resets circuits not yet accepted.
func (l *listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	l.n.mu.Lock()
	if l.n.services[l.service] == l {
		delete(l.n.services, l.service)
	}
	l.n.mu.Unlock()
	for {
		select {
		case c := <-l.backlog:
			c.(interface{ abort() }).abort()
		default:
			return nil
		}
	}
}

// Addr is the service's address, node/service.
func (l *listener) Addr() net.Addr { return circuit.Addr{Node: l.n.cfg.Name, Service: l.service} }
