package simulate

import "fmt"

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
	graph := c.linkGraph().metrics().dense()
	names := c.Names()
	st := Stretch{MaxRatio: 1}
	dist := make([]uint64, len(graph.adj))
	var h costHeap
	for _, from := range names {
		src, ok := graph.index[from]
		if !ok {
			continue
		}
		graph.costs(src, dist, &h)
		peers, err := c.Peers(from)
		if err != nil {
			continue
		}
		for _, p := range peers {
			i, ok := graph.index[p.Name]
			if !p.Reachable || !ok || dist[i] == unreached || dist[i] == 0 {
				continue
			}
			d := dist[i]
			st.Routes++
			if uint64(p.Cost) > d {
				st.Longer++
			}
			if r := float64(p.Cost) / float64(d); r > st.MaxRatio {
				st.MaxRatio = r
				st.Worst = fmt.Sprintf("%s→%s cost %d, shortest %d", from, p.Name, p.Cost, d)
			}
		}
	}
	return st, nil
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
