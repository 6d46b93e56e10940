package node

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// Backlog bounds circuits accepted by the node but not yet by the
// service's Accept; beyond it new circuits are refused as overloaded.
const Backlog = 128

// backlogReserve is the part of Backlog that a source gets only while it
// holds fewer than backlogFloor places in it: without it, one member
// opening circuits to a service faster than its application accepted
// them took the whole backlog, and every other source's circuits to the
// service were refused. One source alone still queues Backlog -
// backlogReserve circuits (a burst of 100 to a service that has not
// accepted yet loses none); filling the backlog takes that source and as
// many more as the reserve holds floors (4 more with these figures).
const backlogReserve = Backlog / 8

// backlogFloor is how many places a source may hold and still take one
// more from the backlog's reserve.
const backlogFloor = backlogReserve / 4

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
	// Places in the backlog taken (enqueue): in total and by source. A
	// place is taken when the circuit, its handshake done, is queued, and
	// released once when Accept or Close takes it off the queue.
	// bySource holds at most Backlog entries.
	reserved int
	bySource map[links.SourceKey]int
}

// queued is a circuit waiting in the backlog with its place.
type queued struct {
	c     net.Conn // *trackedConn or *resumableConn
	place *backlogPlace
}

// backlogPlace is a place in a listener's backlog held for one circuit
// of a source; release frees it, once.
type backlogPlace struct {
	l        *listener
	src      links.SourceKey
	released bool // guarded by l.mu
}

// Listen publishes service on this node: circuits addressed to
// (this node, service) are returned by the listener's Accept. Closing the
// listener unpublishes the service; circuits already accepted stay open.
// A name that breaks circuit.ValidateService (1 to 63 bytes of UTF-8,
// no spaces or control characters, no ',', '#' or '*') fails with
// ErrInvalidService. The node's built-in services are its own from New
// on: EchoService, and InfoService unless Config.DisableInfo is set, fail
// with ErrServiceInUse, before Start as after it.
func (n *Node) Listen(service string) (net.Listener, error) {
	l, err := n.listen(service, nil)
	if err != nil {
		return nil, err // not a nil *listener in a non-nil interface
	}
	return l, nil
}

// listen is Listen for a service whose circuits handle serves, when set.
func (n *Node) listen(service string, handle func(net.Conn)) (*listener, error) {
	if err := circuit.ValidateService(service); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state == stateClosing || n.state == stateClosed {
		return nil, fmt.Errorf("listen %q: %w", service, errShutDown)
	}
	if n.services[service] != nil {
		return nil, fmt.Errorf("listen %q: %w", service, ErrServiceInUse)
	}
	if handle == nil && (service == EchoService || service == InfoService && !n.cfg.DisableInfo) {
		// Not started yet: the node's own handler takes it at Start.
		return nil, fmt.Errorf("listen %q: %w (the node's built-in service)", service, ErrServiceInUse)
	}
	l := &listener{n: n, service: service, handle: handle, done: make(chan struct{}), bySource: make(map[links.SourceKey]int)}
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

// hasRoom says why a circuit from src would not find a place in the
// backlog now (noPlace), counting nothing: the check at admission, which
// refuses a circuit cleanly before its handshake when the backlog is
// already full for it. The place is taken, check and count in one step,
// only once the handshake proved the source (enqueue): a place taken
// before it would be held by a handshake never finished until its
// timeout, however fast the application accepts.
func (l *listener) hasRoom(src links.SourceKey) error {
	if l.handle != nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.noPlace(l.reserved, l.bySource[src])
}

// noPlace says why a source holding held places may not take one more
// while taken places are taken: the backlog is full, or it is down to its
// reserve (backlogReserve) and the source holds backlogFloor or more.
// Called with l.mu held.
func (l *listener) noPlace(taken, held int) error {
	switch {
	case taken >= Backlog:
		return fmt.Errorf("service %q has %d circuits waiting to be accepted", l.service, taken)
	case taken >= Backlog-backlogReserve && held >= backlogFloor:
		return fmt.Errorf("service %q has %d circuits waiting to be accepted, %d from this source; the last %d places are kept for sources holding fewer than %d",
			l.service, taken, held, backlogReserve, backlogFloor)
	}
	return nil
}

// backlogSource is whom a circuit to this node, from neighbour from,
// counts against in its service's backlog once its handshake is done
// (enqueue): the source its end-to-end handshake proved, or for a clear
// circuit the link (hop 0) or its claim along its path (reclaimSource),
// which a router on that path may make up.
func backlogSource(o *circuit.Open, resp *seal.Responder) links.SourceKey {
	if resp != nil {
		return links.ProvenSource(o.Source)
	}
	return reclaimSource(o)
}

// release frees the place; a nil place or one already freed: nothing.
func (p *backlogPlace) release() {
	if p == nil {
		return
	}
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.released {
		return
	}
	p.released = true
	l.reserved--
	if l.bySource[p.src]--; l.bySource[p.src] <= 0 {
		delete(l.bySource, p.src)
	}
}

// serve hands an accepted circuit from src to the service: its handler
// runs on the calling goroutine (the one that read the open, already
// owned by the node), which closes the circuit after it, else the circuit
// waits in the backlog for Accept in a place counted against src
// (enqueue). A built-in echo thus answers an open's early data without two
// goroutine hand-offs (to Accept, and to a goroutine per circuit) between
// its arrival and its echo. The circuit is aborted, and serve says why,
// when the listener closed or the backlog has no place for src.
func (l *listener) serve(c net.Conn, src links.SourceKey) error {
	if l.handle != nil && l.open() {
		defer c.Close()
		l.handle(c)
		return nil
	}
	if l.handle != nil {
		c.(aborter).abortWith(circuit.CloseShuttingDown)
		return errListenerClosed
	}
	err := l.enqueue(c, src)
	switch {
	case errors.Is(err, errListenerClosed):
		c.(aborter).abortWith(circuit.CloseShuttingDown)
	case err != nil:
		c.(aborter).abortWith(circuit.CloseUnavailable) // accepted, but no place to wait in
	}
	return err
}

// aborter is a circuit accepted by the node (*trackedConn or
// *resumableConn) that it resets with code.
type aborter interface{ abortWith(code uint64) }

// errListenerClosed: the service's listener closed before its circuit
// was queued.
var errListenerClosed = errors.New("the service's listener is closed")

// open reports whether the listener is not closed.
func (l *listener) open() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed
}

// enqueue hands an accepted circuit from src to Accept in a place counted
// against src, or says why not: the listener closed, or no place (noPlace).
// The check and the count are one step under l.mu, so circuits of one
// source queued concurrently cannot all pass a check that none of them
// counted in yet. The channel holds Backlog, and a place is freed only
// after its circuit left it: a place found is room in the channel.
func (l *listener) enqueue(c net.Conn, src links.SourceKey) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errListenerClosed
	}
	if err := l.noPlace(l.reserved, l.bySource[src]); err != nil {
		return err
	}
	select {
	case l.backlog <- queued{c: c, place: &backlogPlace{l: l, src: src}}:
		l.reserved++
		l.bySource[src]++
		return nil
	default:
		return fmt.Errorf("service %q has %d circuits waiting to be accepted", l.service, len(l.backlog))
	}
}

// Accept returns the next circuit to the service. Its RemoteAddr names
// the source node, authenticated by the circuit's end-to-end handshake
// (unless the node runs with E2EOff and the circuit came in the clear).
func (l *listener) Accept() (net.Conn, error) {
	select {
	case q := <-l.backlog:
		q.place.release()
		return q.c, nil
	case <-l.done:
		// Drain what raced in before the close.
		select {
		case q := <-l.backlog:
			q.place.release()
			return q.c, nil
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
			q.place.release()
			q.c.(aborter).abortWith(circuit.CloseShuttingDown)
		default:
			return nil
		}
	}
}

// Addr is the service's address, node/service.
func (l *listener) Addr() net.Addr { return circuit.Addr{Node: l.n.cfg.Name, Service: l.service} }
