package node

import (
	"io"
	"net"
	"sync"
)

// echoBufSize is the copy buffer of one echo circuit.
const echoBufSize = 16 << 10

// echoBufs pools the echo circuits' copy buffers: a circuit borrows one
// for its life instead of allocating (and zeroing) 16 KiB per open, which
// was most of the bytes a destination allocated per echo circuit.
var echoBufs = sync.Pool{New: func() any { b := make([]byte, echoBufSize); return &b }}

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

// startBuiltin publishes a service the node answers itself: handle runs
// on every circuit to it, on the goroutine that delivered the circuit
// (see listener.serve), which closes the circuit after it.
func (n *Node) startBuiltin(service string, handle func(net.Conn)) {
	if _, err := n.listen(service, handle); err != nil {
		n.log.Warn("built-in service unavailable", "service", service, "err", err)
	}
}
