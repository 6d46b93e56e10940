package node

import (
	"io"
	"net"
	"sync"

	"github.com/circuitmesh/circuitmesh/internal/stack"
)

// echoBufSize is the copy buffer of one echo circuit.
const echoBufSize = 16 << 10

// echoBufs pools the echo circuits' copy buffers: a circuit borrows one
// for its life instead of allocating (and zeroing) 16 KiB per open, which
// was most of the bytes a destination allocated per echo circuit.
var echoBufs = sync.Pool{New: func() any { b := make([]byte, echoBufSize); return &b }}

// serveEcho answers the built-in echo service until the node closes: every
// circuit gets its bytes back, and its half-close is mirrored.
func serveEcho(n *Node, lis net.Listener) {
	serveEach(n, lis, echo)
}

// echo sends c's bytes back until c's other end half-closes, then
// half-closes c.
func echo(c net.Conn) {
	bp := echoBufs.Get().(*[]byte)
	defer echoBufs.Put(bp)
	io.CopyBuffer(c, c, *bp)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// startBuiltin publishes a service the node answers itself, served by
// serve until the node closes.
func (n *Node) startBuiltin(service string, serve func(*Node, net.Listener)) {
	lis, err := n.Listen(service)
	if err != nil {
		n.log.Warn("built-in service unavailable", "service", service, "err", err)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		serve(n, lis)
	}()
}

// serveEach runs handle on every circuit lis accepts, each in a goroutine
// the node owns, and closes the circuit after it. Close closes every
// service listener, which ends the loop.
func serveEach(n *Node, lis net.Listener, handle func(c net.Conn)) {
	for {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer c.Close()
			stack.Grow8K() // a sealed Read and Write grow a 2 KiB stack twice
			handle(c)
		}()
	}
}
