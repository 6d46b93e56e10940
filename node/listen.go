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
	backlog chan queued
	// handle, for a service the node answers itself, serves each circuit
	// on the goroutine that delivered it (serve): nothing is queued.
	handle func(net.Conn)
	mu     sync.Mutex
	closed bool
	done   chan struct{}
	// bysource counts the circuits in the backlog by source; an entry
	// exists while it counts one (at most Backlog entries).
	bysource map[string]int
}

// queued is a circuit in a listener's backlog: a *trackedConn or
// *resumableConn, with its source.
type queued struct {
	c      net.Conn
	source string
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
	l := &listener{n: n, service: service, handle: handle, done: make(chan struct{}), bysource: map[string]int{}}
	if handle == nil {
		l.backlog = make(chan queued, Backlog)
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

// backlogShare is how many circuits of one source the backlog takes once
// it is half full: a quarter of it. Below half, a source's burst is
// queued whole; above, one source cannot take the rest, so that a member
// opening circuits to a service faster than it accepts them (a slow or
// starved application) leaves other sources room, where before it held
// the whole backlog and had their circuits refused.
const backlogShare = Backlog / 4

// roomFor says whether the backlog takes a circuit of source (authenticated;
// "" when not known yet: the total alone is checked), and why not.
func (l *listener) roomFor(source string) (bool, string) {
	if l.handle != nil {
		return true, ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.roomLocked(source)
}

func (l *listener) roomLocked(source string) (bool, string) {
	switch n := len(l.backlog); {
	case n >= cap(l.backlog):
		return false, fmt.Sprintf("service %q has %d circuits waiting to be accepted", l.service, n)
	case source != "" && n >= cap(l.backlog)/2 && l.bysource[source] >= backlogShare:
		return false, fmt.Sprintf("service %q has %d circuits waiting to be accepted, %d of them from %s", l.service, n, l.bysource[source], source)
	}
	return true, ""
}

// serve hands an accepted circuit from source (authenticated; "" when
// only claimed) to the service: its handler runs on the calling goroutine
// (the one that read the open, already owned by the node), which closes
// the circuit after it, else the circuit waits in the backlog for Accept. A built-in echo thus answers an open's early data
// without two goroutine hand-offs (to Accept, and to a goroutine per
// circuit) between its arrival and its echo. The circuit is aborted when
// the backlog has no room for it (roomFor) or the listener closed.
func (l *listener) serve(c net.Conn, source string) {
	if l.handle != nil && l.open() {
		defer c.Close()
		l.handle(c)
		return
	}
	if l.handle != nil || !l.enqueue(c, source) {
		c.(interface{ abort() }).abort()
	}
}

// open reports whether the listener is not closed.
func (l *listener) open() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

// enqueue hands an accepted circuit from source to Accept; false when the
// backlog has no room for it (roomFor) or the listener closed.
func (l *listener) enqueue(c net.Conn, source string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok, _ := l.roomLocked(source); !ok || l.closed {
		return false
	}
	select {
	case l.backlog <- queued{c: c, source: source}:
		l.bysource[source]++
		return true
	default:
		return false
	}
}

// dequeued is q taken from the backlog.
func (l *listener) dequeued(q queued) net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bysource[q.source]--; l.bysource[q.source] <= 0 {
		delete(l.bysource, q.source)
	}
	return q.c
}

// Accept returns the next circuit to the service. Its RemoteAddr names
// the source node, authenticated by the circuit's end-to-end handshake
// (unless the node runs with E2EOff and the circuit came in the clear).
func (l *listener) Accept() (net.Conn, error) {
	select {
	case q := <-l.backlog:
		return l.dequeued(q), nil
	case <-l.done:
		// Drain what raced in before the close.
		select {
		case q := <-l.backlog:
			return l.dequeued(q), nil
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
		case q := <-l.backlog:
			l.dequeued(q).(interface{ abort() }).abort()
		default:
			return nil
		}
	}
}

// Addr is the service's address, node/service.
func (l *listener) Addr() net.Addr { return circuit.Addr{Node: l.n.cfg.Name, Service: l.service} }
