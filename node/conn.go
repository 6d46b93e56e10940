package node

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

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
	police atomic.Pointer[policed] // as the authorization policy allowed it
	via    string                  // the neighbour a dialled circuit went through
	once   sync.Once
	// failed is the first failure a dialled circuit's Read or Write saw (a
	// reset from the path, a refusal of an early circuit): the caller's
	// span reports it.
	failed atomic.Pointer[error]
}

// Read reads from the circuit (see circuit.Conn.Read).
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.noteFailure(err)
	}
	return n, err
}

// Write writes to the circuit (see circuit.Conn.Write).
func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.noteFailure(err)
	}
	return n, err
}

// noteFailure keeps the first failure of a dialled circuit. The end of
// the stream, deadlines the caller set and use after Close are not
// failures of the circuit.
func (c *trackedConn) noteFailure(err error) {
	if c.role != "dial" || errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed) ||
		localReset(err) {
		return
	}
	// A copy, so that the io.EOF that ends every circuit costs no
	// allocation (err's own address would move err to the heap each call).
	kept := err
	c.failed.CompareAndSwap(nil, &kept)
}

// localReset reports whether err is a reset this end gave the circuit.
func localReset(err error) bool {
	var reset *circuit.ResetError
	return errors.As(err, &reset) && !reset.Remote
}

// track registers c as a live circuit end of the node. entry, when not
// nil, is the circuit's place in the set taken before c existed.
func (n *Node) track(c *circuit.Conn, role string, span trace.Span, t *ticket, entry *tracked) *trackedConn {
	rm := n.metrics.dial
	if role == "accept" {
		rm = n.metrics.accept
	}
	rm.opened.Inc()
	rm.active.Inc()
	if entry == nil {
		entry = n.circuits.add(false, nil)
	}
	// c is complete before it is bound: from then on the node's Close may
	// abort it (finish reads entry) while this goroutine goes on.
	tc := &trackedConn{Conn: c, n: n, role: role, rm: rm, span: span, ticket: t, entry: entry}
	n.circuits.bind(entry, tc.abort)
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

// Reset resets the circuit with code (see circuit.Conn.Reset) and lets
// it go as Close does: its span ends "reset", and its place in the
// node's limits is free without a Close after it.
func (c *trackedConn) Reset(code uint64) {
	c.Conn.Reset(code)
	c.finish("reset", nil)
}

// discard resets a circuit a dial opened but did not return (an open
// through another next hop carried it first): the dial's span is the
// returned circuit's, and is left to it.
func (c *trackedConn) discard() {
	c.span = trace.SpanFromContext(context.Background())
	c.Reset(circuit.CloseCancelled)
}

// abort resets the circuit (node shutdown or an undeliverable circuit).
func (c *trackedConn) abort() { c.abortWith(circuit.CloseShuttingDown) }

// abortWith is abort with the close code the other end reads; this end's
// Reads and Writes report the same reset (circuit.ErrShuttingDown for
// the node's Close), not net.ErrClosed as after the application's own
// Close.
func (c *trackedConn) abortWith(code uint64) {
	c.Conn.Abort(code)
	c.finish("reset", circuit.ErrShuttingDown)
}

func (c *trackedConn) finish(result string, err error) {
	c.once.Do(func() {
		c.n.authz.forget(c.police.Load())
		c.n.circuits.remove(c.entry)
		if c.ticket != nil {
			c.ticket.release()
		}
		c.rm.active.Dec()
		up, down := c.Conn.BytesOut(), c.Conn.BytesIn()
		if c.role == "accept" {
			up, down = down, up
		}
		if p := c.failed.Load(); err == nil && p != nil {
			result, err = resultLabel(*p), *p
			if result == "error" {
				result = "reset"
			}
		}
		endSpan(c.span, result, up, down, err)
	})
}
