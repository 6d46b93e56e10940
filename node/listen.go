package node

import (
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
	// Places in the backlog reserved (reserve): in total and by source.
	// A place is reserved when the circuit is admitted, before its
	// handshake, and released once when Accept takes it or the circuit
	// fails before it is queued, so concurrent circuits of one source
	// are all counted. bySource holds at most Backlog entries.
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

// reserve reserves a place in the backlog for a circuit from src, or
// says why there is none (noPlace). The
// check and the count are one step, so circuits of one source admitted
// concurrently cannot all pass a check that none of them counted in yet.
// A service the node answers itself (handle) queues nothing: its place
// is nil.
func (l *listener) reserve(src links.SourceKey) (*backlogPlace, error) {
	if l.handle != nil {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.noPlace(l.reserved, l.bySource[src]); err != nil {
		return nil, err
	}
	l.reserved++
	l.bySource[src]++
	return &backlogPlace{l: l, src: src}, nil
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
// counts against in its service's backlog (listener.reserve): its source
// proven by a one-message handshake or by the link (hop 0); for a full
// handshake relayed by the neighbour, until its third message proves the
// source (backlogPlace.prove), the neighbour, whatever source and relays
// it names (a key per claim would give a neighbour naming made-up relays
// a share per name, each held until the handshake times out); for a
// clear circuit, its source as claimed along its path (reclaimSource).
func backlogSource(o *circuit.Open, resp *seal.Responder, from string) links.SourceKey {
	switch {
	case resp != nil && !resp.Full():
		return links.ProvenSource(o.Source)
	case resp != nil && o.Hop > 0:
		return links.ClaimedSource("", []string{from})
	}
	return reclaimSource(o)
}

// prove counts the place against src, the source a full handshake proved,
// instead of the claim it was reserved for: claims that differ only in
// the relays a neighbour names before its own would each hold a share.
// It says why not (noPlace); the caller then frees the place.
func (p *backlogPlace) prove(src links.SourceKey) error {
	if p == nil {
		return nil
	}
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.released || p.src == src {
		return nil
	}
	// The place is counted in reserved: the others are one fewer.
	if err := l.noPlace(l.reserved-1, l.bySource[src]); err != nil {
		return err
	}
	if l.bySource[p.src]--; l.bySource[p.src] <= 0 {
		delete(l.bySource, p.src)
	}
	p.src = src
	l.bySource[src]++
	return nil
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

// serve hands an accepted circuit to the service: its handler runs on the
// calling goroutine (the one that read the open, already owned by the
// node), which closes the circuit after it, else the circuit waits in the
// backlog for Accept in place, which serve now owns (reserve). A built-in
// echo thus answers an open's early data without two goroutine hand-offs
// (to Accept, and to a goroutine per circuit) between its arrival and its
// echo. The circuit is aborted, and its place freed, when the listener
// closed.
func (l *listener) serve(c net.Conn, place *backlogPlace) {
	if l.handle != nil && l.open() {
		defer c.Close()
		l.handle(c)
		return
	}
	if l.handle != nil || !l.enqueue(queued{c: c, place: place}) {
		place.release()
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
// full or the listener closed. A circuit holding a place (reserve) always
// finds room: the channel holds Backlog, as many as the places.
func (l *listener) enqueue(q queued) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	select {
	case l.backlog <- q:
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
			q.c.(interface{ abort() }).abort()
		default:
			return nil
		}
	}
}

// Addr is the service's address, node/service.
func (l *listener) Addr() net.Addr { return circuit.Addr{Node: l.n.cfg.Name, Service: l.service} }
