package simulate

import (
	"container/heap"
	"fmt"
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
// it reaches in graph (graph[u][v] is the cost of u's link to v).
func shortest(graph map[string]map[string]uint32, src string) map[string]uint64 {
	dist := map[string]uint64{src: 0}
	q := &costQueue{{src, 0}}
	for q.Len() > 0 {
		it := heap.Pop(q).(costItem)
		if it.cost > dist[it.name] {
			continue
		}
		for next, c := range graph[it.name] {
			if graph[next] == nil {
				continue // the link's far end is down
			}
			d := it.cost + uint64(c)
			if old, ok := dist[next]; !ok || d < old {
				dist[next] = d
				heap.Push(q, costItem{next, d})
			}
		}
	}
	return dist
}

type costItem struct {
	name string
	cost uint64
}

// costQueue is a min-heap of costItem by cost.
type costQueue []costItem

func (q costQueue) Len() int           { return len(q) }
func (q costQueue) Less(i, j int) bool { return q[i].cost < q[j].cost }
func (q costQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *costQueue) Push(x any)        { *q = append(*q, x.(costItem)) }
func (q *costQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
