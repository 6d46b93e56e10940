package simulate

import (
	"github.com/circuitmesh/circuitmesh/routing"
	"github.com/circuitmesh/circuitmesh/routing/routingtest"
)

// linkGraph is a snapshot of the live links of the running nodes:
// graph[u][v] is the cost of u's link to v (node.LinkInfo.Cost, the cost
// u's routing engine adds up).
type linkGraph map[string]map[string]uint32

// linkGraph snapshots the live links of every running node.
func (c *Cluster) linkGraph() linkGraph {
	graph := linkGraph{}
	for _, name := range c.Names() {
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
	return graph
}

// pathCost is the cost of the path (nodes, source first) in graph; ok is
// false when one of its links is not in graph.
func (g linkGraph) pathCost(path []string) (cost uint64, ok bool) {
	for i := 1; i < len(path); i++ {
		c, ok := g[path[i-1]][path[i]]
		if !ok {
			return 0, false
		}
		cost += uint64(c)
	}
	return cost, true
}

// metricGraph is a linkGraph ready for shortestPaths: links whose far end
// is not in the snapshot (a node that is down) are left out.
type metricGraph map[string]map[string]routing.Metric

// metrics converts the graph once for any number of shortestPaths calls.
func (g linkGraph) metrics() metricGraph {
	m := make(metricGraph, len(g))
	for u, nbrs := range g {
		m[u] = make(map[string]routing.Metric, len(nbrs))
		for v, c := range nbrs {
			if g[v] != nil {
				m[u][v] = routing.Metric(c)
			}
		}
	}
	return m
}

// shortestPaths returns the cheapest path (its cost, and its hop count,
// the fewest among equally cheap paths) from src to every node it reaches
// in g, src left out. The Dijkstra is routingtest.ShortestPaths, the
// reference the routing engine's own tests use.
func shortestPaths(g metricGraph, src string) map[string]routingtest.Path {
	return routingtest.ShortestPaths(g, func(string) bool { return false }, src)
}
