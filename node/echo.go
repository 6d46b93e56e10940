package node

import (
	"io"
	"net"
)

// serveEcho answers the built-in echo service until the node closes: every
// circuit gets its bytes back, and its half-close is mirrored.
func serveEcho(n *Node, lis net.Listener) {
	// Close closes every service listener, which ends this loop.
	for {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go func(c net.Conn) {
			defer n.wg.Done()
			defer c.Close()
			buf := make([]byte, 16<<10)
			io.CopyBuffer(c, c, buf)
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
		}(c)
	}
}
