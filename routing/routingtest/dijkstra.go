package routingtest

import (
	"container/heap"

	"github.com/circuitmesh/circuitmesh/routing"
)

// Path is a reference shortest path.
type Path struct {
	Cost uint64
	Hops int
}

// ShortestPaths returns the shortest path from src to every node it can
// reach in g, where nodes in leaf (other than src) are never transit.
func ShortestPaths(g map[string]map[string]routing.Metric, leaf func(string) bool, src string) map[string]Path {
	dist := map[string]Path{src: {}}
	done := make(map[string]bool)
	pq := &pathHeap{{src, Path{}}}
	for pq.Len() > 0 {
		it := heap.Pop(pq).(item)
		if done[it.node] {
			continue
		}
		done[it.node] = true
		if it.node != src && leaf(it.node) {
			continue
		}
		for nb, c := range g[it.node] {
			np := Path{it.p.Cost + uint64(c), it.p.Hops + 1}
			if old, ok := dist[nb]; !ok || np.Cost < old.Cost || (np.Cost == old.Cost && np.Hops < old.Hops) {
				dist[nb] = np
				heap.Push(pq, item{nb, np})
			}
		}
	}
	delete(dist, src)
	return dist
}

type item struct {
	node string
	p    Path
}

type pathHeap []item

func (h pathHeap) Len() int { return len(h) }
func (h pathHeap) Less(i, j int) bool {
	if h[i].p.Cost != h[j].p.Cost {
		return h[i].p.Cost < h[j].p.Cost
	}
	return h[i].p.Hops < h[j].p.Hops
}
func (h pathHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pathHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *pathHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
