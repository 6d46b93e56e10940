package node

import (
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// trackedConn is a circuit end handed to the user: closing it ends its
// span, frees its limit ticket and removes it from the node's circuit set.
type trackedConn struct {
	*circuit.Conn
	n      *Node
	role   string
	rm     roleMetrics
	span   trace.Span
	ticket *ticket
	entry  *tracked
	once   sync.Once
}

// track registers c as a live circuit end of the node. entry, when not
// nil, is the circuit's place in the set taken before c existed.
func (n *Node) track(c *circuit.Conn, role string, span trace.Span, t *ticket, entry *tracked) *trackedConn {
	rm := n.metrics.dial
	if role == "accept" {
		rm = n.metrics.accept
	}
	tc := &trackedConn{Conn: c, n: n, role: role, rm: rm, span: span, ticket: t}
	rm.opened.Inc()
	rm.active.Inc()
	if entry == nil {
		entry = n.circuits.add(false, nil)
	}
	n.circuits.bind(entry, tc.abort)
	tc.entry = entry
	return tc
}

// Close closes the circuit end (see circuit.Conn.Close).
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.finish("closed", nil)
	return err
}

// CloseWrite half-closes the circuit end (see circuit.Conn.CloseWrite).
func (c *trackedConn) CloseWrite() error {
	err := c.Conn.CloseWrite()
	if err == nil {
		halfClose(c.span, c.role == "dial")
	}
	return err
}

// abort resets the circuit (node shutdown or an undeliverable circuit).
func (c *trackedConn) abort() {
	c.Conn.Reset(circuit.CloseShuttingDown)
	c.finish("reset", circuit.ErrShuttingDown)
}

func (c *trackedConn) finish(result string, err error) {
	c.once.Do(func() {
		c.n.circuits.remove(c.entry)
		if c.ticket != nil {
			c.ticket.release()
		}
		c.rm.active.Dec()
		up, down := c.Conn.BytesOut(), c.Conn.BytesIn()
		if c.role == "accept" {
			up, down = down, up
		}
		endSpan(c.span, result, up, down, err)
	})
}
