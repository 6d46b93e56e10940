package node

import (
	"io"
	"net"

	"github.com/circuitmesh/circuitmesh/internal/stack"
)

// serveEcho answers the built-in echo service until the node closes: every
// circuit gets its bytes back, and its half-close is mirrored.
func serveEcho(n *Node, lis net.Listener) {
	serveEach(n, lis, func(c net.Conn) {
		buf := make([]byte, 16<<10)
		io.CopyBuffer(c, c, buf)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	})
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
