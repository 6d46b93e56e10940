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
	graph := c.linkGraph()
	metrics := graph.metrics()
	names := c.Names()
	st := Stretch{MaxRatio: 1}
	for _, from := range names {
		if graph[from] == nil {
			continue
		}
		dist := shortestIn(metrics, from)
		peers, err := c.Peers(from)
		if err != nil {
			continue
		}
		for _, p := range peers {
			d, ok := dist[p.Name]
			if !p.Reachable || !ok || d == 0 {
				continue
			}
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
	return shortestIn(graph.metrics(), src)
}

// shortestIn is shortest on a converted graph.
func shortestIn(g metricGraph, src string) map[string]uint64 {
	dist := map[string]uint64{src: 0}
	for name, p := range shortestPaths(g, src) {
		dist[name] = p.Cost
	}
	return dist
}
