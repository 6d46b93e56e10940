package simulate

import (
	"math"
	"slices"
)

// denseGraph is a metricGraph with its nodes numbered, for the cheapest
// path costs from every node of a large cluster: RouteStretch runs one
// Dijkstra per node, which on maps of names cost seconds at 1000 nodes.
type denseGraph struct {
	index map[string]int
	adj   [][]denseEdge
}

type denseEdge struct {
	to   int
	cost uint64
}

// unreached is a cost of denseGraph.costs for a node src does not reach.
const unreached = math.MaxUint64

func (g metricGraph) dense() *denseGraph {
	names := make([]string, 0, len(g))
	for u := range g {
		names = append(names, u)
	}
	slices.Sort(names)
	d := &denseGraph{index: make(map[string]int, len(names)), adj: make([][]denseEdge, len(names))}
	for i, u := range names {
		d.index[u] = i
	}
	for i, u := range names {
		for v, c := range g[u] {
			if j, ok := d.index[v]; ok {
				d.adj[i] = append(d.adj[i], denseEdge{j, uint64(c)})
			}
		}
	}
	return d
}

// costs fills dist (one entry per node) with the cheapest path cost from
// src, unreached where there is none; h is scratch space.
func (d *denseGraph) costs(src int, dist []uint64, h *costHeap) {
	for i := range dist {
		dist[i] = unreached
	}
	dist[src] = 0
	*h = append((*h)[:0], costItem{0, src})
	for len(*h) > 0 {
		it := h.pop()
		if it.cost > dist[it.node] {
			continue // a stale entry
		}
		for _, e := range d.adj[it.node] {
			if nc := it.cost + e.cost; nc < dist[e.to] {
				dist[e.to] = nc
				h.push(costItem{nc, e.to})
			}
		}
	}
}

type costItem struct {
	cost uint64
	node int
}

// costHeap is a binary min-heap of costItems by cost.
type costHeap []costItem

func (h *costHeap) push(it costItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p].cost <= s[i].cost {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *costHeap) pop() costItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(s) && s[l].cost < s[m].cost {
			m = l
		}
		if r := l + 1; r < len(s) && s[r].cost < s[m].cost {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
