package node

import (
	"fmt"
	"slices"
	"testing"
)

// meshDetours returns routing's Detours as node self sees them on graph
// (adjacency lists) once shortest-hop routing has converged with poison
// reverse: the neighbours of self other than dest whose next hop toward
// dest is not self. Ties go to the neighbour of the smallest name.
func meshDetours(graph map[string][]string, self string) func(string) []string {
	dist := map[string]map[string]int{}
	for src := range graph {
		d := map[string]int{src: 0}
		for q := []string{src}; len(q) > 0; q = q[1:] {
			for _, nb := range graph[q[0]] {
				if _, ok := d[nb]; !ok {
					d[nb] = d[q[0]] + 1
					q = append(q, nb)
				}
			}
		}
		dist[src] = d
	}
	next := func(from, dest string) string {
		best := ""
		for _, nb := range graph[from] {
			if dist[nb][dest] == dist[from][dest]-1 && (best == "" || nb < best) {
				best = nb
			}
		}
		return best
	}
	return func(dest string) []string {
		var out []string
		for _, nb := range graph[self] {
			if _, ok := dist[nb][dest]; ok && nb != dest && next(nb, dest) != self {
				out = append(out, nb)
			}
		}
		slices.Sort(out)
		return out
	}
}

// undirected builds adjacency lists from edges.
func undirected(edges [][2]string) map[string][]string {
	g := map[string][]string{}
	for _, e := range edges {
		g[e[0]] = append(g[e[0]], e[1])
		g[e[1]] = append(g[e[1]], e[0])
	}
	return g
}

// TestLinkAlternatesSeesLongCycles: in a mesh whose nodes all hold 3 links
// and whose shortest cycle has 5 (the Petersen graph; a half of 10 nodes
// at MaxLinks 3 linked so after a partition), no neighbour advertises a
// route to another (each reaches it through this node), yet no link is a
// bridge: every link has an alternate, so a node at its maximum can make
// room for the first link from the other half after the heal. (Counting
// only neighbours that advertise the peer itself, no link had one, and
// the halves stayed apart.) A real bridge still has none.
func TestLinkAlternatesSeesLongCycles(t *testing.T) {
	var edges [][2]string
	p := func(i int) string { return fmt.Sprintf("p%d", i) }
	for i := range 5 {
		edges = append(edges,
			[2]string{p(i), p((i + 1) % 5)},     // outer cycle
			[2]string{p(i), p(5 + i)},           // spokes
			[2]string{p(5 + i), p(5 + (i+2)%5)}) // inner pentagram
	}
	g := undirected(edges)
	var dests []string
	for name := range g {
		if name != "p0" {
			dests = append(dests, name)
		}
	}
	slices.Sort(dests)
	detours := meshDetours(g, "p0")
	for _, peer := range g["p0"] {
		if n := len(detours(peer)); n != 0 {
			t.Fatalf("setup: %s has %d detours, want none (no triangle)", peer, n)
		}
	}
	alt := linkAlternates(g["p0"], dests, detours)
	for _, peer := range g["p0"] {
		if alt[peer] == 0 {
			t.Errorf("link p0-%s: no alternate, but it is on a 5-cycle (alternates %v)", peer, alt)
		}
	}

	// Two triangles joined by the link w-p: a and b stay reachable
	// without their links to w, p does not.
	g = undirected([][2]string{{"w", "a"}, {"w", "b"}, {"a", "b"}, {"w", "p"}, {"p", "q"}, {"p", "r"}, {"q", "r"}})
	alt = linkAlternates(g["w"], []string{"a", "b", "p", "q", "r"}, meshDetours(g, "w"))
	if alt["p"] != 0 || alt["a"] == 0 || alt["b"] == 0 {
		t.Errorf("bridge w-p: alternates %v, want none for p and some for a and b", alt)
	}
}
