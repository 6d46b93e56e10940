package simulate

import (
	"fmt"

	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
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
	graph := map[string]map[string]uint32{}
	names := c.Names()
	for _, name := range names {
		if c.Node(name) == nil {
			continue
		}
		links, err := c.Links(name)
		if err != nil {
			continue // went down meanwhile
		}
		graph[name] = map[string]uint32{}
		for _, l := range links {
			graph[name][l.Peer] = l.Cost
		}
	}
	st := Stretch{MaxRatio: 1}
	for _, from := range names {
		if graph[from] == nil {
			continue
		}
		dist := shortest(graph, from)
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
// it reaches in graph (graph[u][v] is the cost of u's link to v), src
// included at 0. A link whose far end is down is left out.
func shortest(graph map[string]map[string]uint32, src string) map[string]uint64 {
	g := make(map[string]map[string]routing.Metric, len(graph))
	for u, nbrs := range graph {
		g[u] = make(map[string]routing.Metric, len(nbrs))
		for v, c := range nbrs {
			if graph[v] != nil {
				g[u][v] = routing.Metric(c)
			}
		}
	}
	dist := map[string]uint64{src: 0}
	for name, p := range routingtest.ShortestPaths(g, func(string) bool { return false }, src) {
		dist[name] = p.Cost
	}
	return dist
}
