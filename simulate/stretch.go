package simulate

import (
	"fmt"

	"github.com/circuitmesh/circuitmesh/node"
)

// Stretch compares the routes of the running nodes with the shortest
// paths over their live links' actual costs (each node's node.LinkInfo.Cost
// for its side of a link, as the routing engine uses it).
type Stretch struct {
	// Routes is how many routes were compared (pairs of running nodes
	// where the first has a route to the second and a path exists).
	Routes int `json:"routes"`
	// Longer is how many of them cost more than the shortest path.
	Longer int `json:"longer"`
	// MaxRatio is the largest route cost divided by the shortest path's
	// cost (1 when every route is shortest).
	MaxRatio float64 `json:"max_ratio"`
	// Worst names the route with MaxRatio, as "a→b cost X, shortest Y".
	Worst string `json:"worst,omitempty"`
}

// RouteStretch measures how far the nodes' routes are from the shortest
// paths (Dijkstra over every running node's live links).
func (c *Cluster) RouteStretch() (Stretch, error) {
	m := c.newStretchMeter()
	for _, from := range c.Names() {
		if _, ok := m.graph.index[from]; !ok {
			continue
		}
		peers, err := c.Peers(from)
		if err != nil {
			continue
		}
		m.add(from, peers)
	}
	return m.st, nil
}

// stretchMeter adds routing tables up into a Stretch against the live
// links at its creation.
type stretchMeter struct {
	graph *denseGraph
	dist  []uint64
	h     costHeap
	st    Stretch
}

func (c *Cluster) newStretchMeter() *stretchMeter {
	g := c.linkGraph().metrics().dense()
	return &stretchMeter{graph: g, dist: make([]uint64, len(g.adj)), st: Stretch{MaxRatio: 1}}
}

// add compares the routes of from (its routing table, peers) with the
// shortest paths from it.
func (m *stretchMeter) add(from string, peers []node.PeerInfo) {
	src, ok := m.graph.index[from]
	if !ok {
		return
	}
	m.graph.costs(src, m.dist, &m.h)
	for _, p := range peers {
		i, ok := m.graph.index[p.Name]
		if !p.Reachable || !ok || m.dist[i] == unreached || m.dist[i] == 0 {
			continue
		}
		d := m.dist[i]
		m.st.Routes++
		if uint64(p.Cost) > d {
			m.st.Longer++
		}
		if r := float64(p.Cost) / float64(d); r > m.st.MaxRatio {
			m.st.MaxRatio = r
			m.st.Worst = fmt.Sprintf("%s→%s cost %d, shortest %d", from, p.Name, p.Cost, d)
		}
	}
}

// shortest returns the cost of the cheapest path from src to every node
// it reaches in graph, src included at 0.
func shortest(graph linkGraph, src string) map[string]uint64 {
	d := graph.metrics().dense()
	i, ok := d.index[src]
	if !ok {
		return map[string]uint64{}
	}
	dist := make([]uint64, len(d.adj))
	d.costs(i, dist, new(costHeap))
	out := map[string]uint64{}
	for name, j := range d.index {
		if dist[j] != unreached {
			out[name] = dist[j]
		}
	}
	return out
}
