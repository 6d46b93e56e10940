package node

import (
	"io"
	"net"
)

// echo answers one circuit of the built-in echo service: its bytes come
// back, and its half-close is mirrored.
func echo(c net.Conn) {
	buf := make([]byte, 16<<10)
	io.CopyBuffer(c, c, buf)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// startBuiltin publishes a service the node answers itself: handle runs
// on each circuit in the goroutine that read its open and accepted it,
// which the node owns, and the circuit is closed after it. There is no
// accept loop to wake and no goroutine to start between the open and its
// answer, as an application's service has (its Accept, then its
// goroutine for the circuit).
func (n *Node) startBuiltin(service string, handle func(net.Conn)) {
	if _, err := n.listen(service, handle); err != nil {
		n.log.Warn("built-in service unavailable", "service", service, "err", err)
	}
}
