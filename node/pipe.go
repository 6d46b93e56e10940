package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/memlink"
)

// loopback carries local circuits (Dial to the node's own name) over a
// private in-memory link from the node to itself, so that they go through
// exactly the dispatch, limits and tracing of any other circuit.
type loopback struct {
	once sync.Once
	err  error
	out  links.Link // the dialling side; streams opened here reach acceptLoop
	ts   []*memlink.Transport
}

// loopLink returns the node's loopback link, creating it on first use.
func (n *Node) loopLink() (links.Link, error) {
	lb := &n.loop
	lb.once.Do(func() {
		mesh := memlink.NewNetwork(memlink.Config{})
		far := "loopback"
		if far == n.cfg.Name {
			far = "loopback-self"
		}
		near, err := mesh.Transport(memlink.TransportConfig{Name: n.cfg.Name, Mesh: "local", MaxStreams: n.cfg.Limits.MaxCircuitsPerLink})
		if err != nil {
			lb.err = fmt.Errorf("local circuits: %w", err)
			return
		}
		acc, err := mesh.Transport(memlink.TransportConfig{Name: far, Mesh: "local", MaxStreams: n.cfg.Limits.MaxCircuitsPerLink})
		if err != nil {
			near.Close()
			lb.err = fmt.Errorf("local circuits: %w", err)
			return
		}
		lb.ts = []*memlink.Transport{near, acc}
		out, err := near.Dial(context.Background(), far)
		if err != nil {
			lb.err = fmt.Errorf("local circuits: %w", err)
			return
		}
		lb.out = out
		in := acc.Links()[0] // its peer is this node: the source check holds
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.acceptLoop(in)
		}()
	})
	if lb.out == nil && lb.err == nil {
		// close came first (a self-dial that passed the running check
		// as the node closed): refuse as a node shutting down does. It
		// returned no link and no error, and the dial panicked.
		return nil, &circuit.RefusedError{Code: circuit.ShuttingDown, Node: n.cfg.Name, Dest: n.cfg.Name, Reason: "node is closing"}
	}
	return lb.out, lb.err
}

// close ends the loopback link and its accept loop.
func (lb *loopback) close() {
	lb.once.Do(func() {}) // no loopback may start after this
	for _, t := range lb.ts {
		t.Close()
	}
}
