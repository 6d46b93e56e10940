package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// latencies builds an underlay from one-way latencies in ms; pairs in
// blocked are not connected; pairs not given have 0 latency.
func latencies(ms map[[2]string]int, blocked ...[2]string) func(a, b string) (time.Duration, bool) {
	return func(a, b string) (time.Duration, bool) {
		for _, p := range blocked {
			if mkpair(p[0], p[1]) == mkpair(a, b) {
				return 0, false
			}
		}
		if v, ok := ms[[2]string{a, b}]; ok {
			return time.Duration(v) * time.Millisecond, true
		}
		return time.Duration(ms[[2]string{b, a}]) * time.Millisecond, true
	}
}

func TestMeasureMesh(t *testing.T) {
	tests := []struct {
		name string
		in   meshInput
		want MeshStats
	}{{
		// A line a-b-c-d over an underlay where a-c and c-d-a have
		// shortcuts; d has no routes yet.
		name: "line with shortcuts in the underlay",
		in: meshInput{
			nodes: []string{"a", "b", "c", "d"},
			links: map[string][]string{"a": {"b"}, "b": {"a", "c"}, "c": {"b", "d"}, "d": {"c"}},
			next: map[string]map[string]string{
				"a": {"b": "b", "c": "b", "d": "b"},
				"b": {"a": "a", "c": "c", "d": "c"},
				"c": {"a": "b", "b": "b", "d": "d"},
			},
			latency: latencies(map[[2]string]int{{"a", "b"}: 10, {"b", "c"}: 10, {"c", "d"}: 10,
				{"a", "c"}: 15, {"a", "d"}: 50, {"b", "d"}: 30}),
		},
		// a→c 20 vs 15, c→a 20 vs 15, a→d 30 vs 25 (a-c-d), the rest 1.
		want: MeshStats{Nodes: 4, Pairs: 12, ReachablePairs: 9, Reachable: 0.75, Links: 3, MaxDegree: 2,
			MeanDegree: 1.5, Components: 1, Diameter: 3, StretchPairs: 9,
			Stretch: (6 + 4.0/3 + 4.0/3 + 1.2) / 9, MaxStretch: 4.0 / 3, WorstRoute: "a→c via a-b-c",
			LinkStretch: (6 + 4.0/3 + 4.0/3 + 1.2) / 9, Unreached: "d→a, d→b, d→c"},
	}, {
		name: "isolated node, a routing loop and a partitioned pair",
		in: meshInput{
			nodes: []string{"a", "b", "e"},
			links: map[string][]string{"a": {"b", "x"}, "b": {"a"}}, // x is not running
			next: map[string]map[string]string{
				"a": {"b": "b", "e": "b"},
				"b": {"a": "a", "e": "a"}, // a and b send e's traffic to each other
			},
			latency: latencies(map[[2]string]int{{"a", "b"}: 5, {"b", "e"}: 5, {"a", "e"}: 1}, [2]string{"a", "e"}),
		},
		want: MeshStats{Nodes: 3, Pairs: 6, ReachablePairs: 4, Reachable: 4.0 / 6, Links: 1, MaxDegree: 1,
			MeanDegree: 2.0 / 3, Isolated: 1, Components: 2, Diameter: 1, StretchPairs: 2, Stretch: 1, MaxStretch: 1,
			WorstRoute: "a→b via a-b", LinkStretch: 1, Unreached: "e→a, e→b",
			Undelivered: 2, UndeliveredRoutes: "a→e via a-b-a-b, b→e via b-a-b-a"},
	}, {
		// a and b share a region (1 ms), c is 10 ms away; a routes to b
		// through c although their own link is there.
		name: "inside and between regions, and a route longer than the links allow",
		in: meshInput{
			nodes: []string{"a", "b", "c"},
			links: map[string][]string{"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b"}},
			next: map[string]map[string]string{
				"a": {"b": "c", "c": "c"},
				"b": {"a": "a", "c": "c"},
				"c": {"a": "a", "b": "b"},
			},
			latency: latencies(map[[2]string]int{{"a", "b"}: 1, {"a", "c"}: 10, {"b", "c"}: 10}),
			region:  func(n string) string { return map[string]string{"a": "eu", "b": "eu", "c": "us"}[n] },
		},
		// a→b 20 vs 1 (the link a-b: 1), the other five 1.
		want: MeshStats{Nodes: 3, Pairs: 6, ReachablePairs: 6, Reachable: 1, Links: 3, MaxDegree: 2,
			MeanDegree: 2, Components: 1, Diameter: 1, StretchPairs: 6, Stretch: 25.0 / 6, MaxStretch: 20,
			WorstRoute: "a→b via a-c-b", LinkStretch: 1, StretchInside: 10.5, HopsInside: 1.5, StretchBetween: 1,
			LinksInside: 1},
	}, {
		name: "no underlay latency: no stretch",
		in: meshInput{
			nodes:   []string{"a", "b"},
			links:   map[string][]string{"a": {"b"}, "b": {"a"}},
			next:    map[string]map[string]string{"a": {"b": "b"}, "b": {"a": "a"}},
			latency: latencies(nil),
		},
		want: MeshStats{Nodes: 2, Pairs: 2, ReachablePairs: 2, Reachable: 1, Links: 1, MaxDegree: 1,
			MeanDegree: 1, Components: 1, Diameter: 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := measureMesh(tt.in)
			near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
			if !near(got.Stretch, tt.want.Stretch) || !near(got.MaxStretch, tt.want.MaxStretch) ||
				!near(got.Reachable, tt.want.Reachable) || !near(got.MeanDegree, tt.want.MeanDegree) ||
				!near(got.LinkStretch, tt.want.LinkStretch) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
			got.Stretch, got.MaxStretch, got.Reachable, got.MeanDegree = tt.want.Stretch, tt.want.MaxStretch, tt.want.Reachable, tt.want.MeanDegree
			got.LinkStretch = tt.want.LinkStretch
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUnderlayLatency(t *testing.T) {
	s, err := Parse("u.sim", "regions eu:a,b us:c ap:d inside=2ms between=30ms..80ms seed=7")
	if err != nil {
		t.Fatal(err)
	}
	u := s.Steps[0].Underlay
	if got := u.Latency("a", "b"); got != 2*time.Millisecond {
		t.Errorf("inside eu: %v, want 2ms", got)
	}
	for _, p := range [][2]string{{"a", "c"}, {"c", "d"}, {"d", "b"}} {
		l := u.Latency(p[0], p[1])
		if l < 30*time.Millisecond || l > 80*time.Millisecond || l != u.Latency(p[1], p[0]) {
			t.Errorf("%s-%s: %v, want the same both ways in 30ms..80ms", p[0], p[1], l)
		}
	}
	if u.Latency("a", "c") != u.Latency("b", "c") {
		t.Errorf("two nodes of one region see different latencies to a third region")
	}
	if got := u.Latency("a", "zz"); got != 0 {
		t.Errorf("a node in no region: %v, want 0", got)
	}
	again, _ := Parse("u.sim", "regions eu:a,b us:c ap:d inside=2ms between=30ms..80ms seed=7")
	if again.Steps[0].Underlay.Latency("a", "d") != u.Latency("a", "d") {
		t.Errorf("the same seed gave another underlay")
	}
}

// followRoute is the reference for routeLatencies: it follows the next
// hops from a to b one hop at a time and adds up the underlay latency of
// each; hops is -1 for a route that loops, ends early or crosses a pair
// the underlay does not connect.
func followRoute(in meshInput, a, b string) (time.Duration, int) {
	var total time.Duration
	at := a
	for hops := 1; hops <= len(in.nodes); hops++ {
		hop := in.next[at][b]
		if hop == "" {
			return 0, -1
		}
		l, ok := in.latency(at, hop)
		if !ok {
			return 0, -1
		}
		total += l
		if hop == b {
			return total, hops
		}
		at = hop
	}
	return 0, -1
}

// randomMesh is a mesh of n nodes whose next hops are drawn at random:
// routes that arrive, loop, end early, go through a node that is not
// running (x) or cross a partitioned pair.
func randomMesh(r *rand.Rand, n int) meshInput {
	in := meshInput{links: map[string][]string{}, next: map[string]map[string]string{}}
	for i := range n {
		in.nodes = append(in.nodes, fmt.Sprintf("n%d", i))
	}
	lat := map[[2]string]int{}
	for i, a := range in.nodes {
		for _, b := range in.nodes[i+1:] {
			lat[[2]string{a, b}] = 1 + r.IntN(50)
		}
	}
	blocked := [][2]string{{in.nodes[0], in.nodes[1]}, {in.nodes[2], in.nodes[5]}}
	in.latency = latencies(lat, blocked...)
	for _, a := range in.nodes {
		next := map[string]string{}
		for _, b := range in.nodes {
			switch k := r.IntN(10); {
			case a == b:
			case k < 5:
				next[b] = b
			case k < 8:
				next[b] = in.nodes[r.IntN(n)]
			case k < 9:
				next[b] = "x"
			}
		}
		in.next[a] = next
	}
	return in
}

// TestRouteLatencies: following each route once per destination gives
// every pair what following it hop by hop gives, loops and dead ends
// included.
func TestRouteLatencies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		in := randomMesh(r, 30)
		index := map[string]int{}
		for i, name := range in.nodes {
			index[name] = i
		}
		routes := routeLatencies(in, index, latencyMatrix(in))
		var arrived, failed int
		for i, a := range in.nodes {
			for j, b := range in.nodes {
				if a == b {
					continue
				}
				wantLat, wantHops := followRoute(in, a, b)
				gotLat, gotHops := routes.at(i, j)
				if gotHops != wantHops || (wantHops >= 0 && gotLat != wantLat) {
					t.Fatalf("%s→%s: %v in %d hops, want %v in %d", a, b, gotLat, gotHops, wantLat, wantHops)
				}
				if wantHops < 0 {
					failed++
				} else {
					arrived++
				}
			}
		}
		if arrived == 0 || failed == 0 {
			t.Fatalf("%d routes arrived, %d did not: the mesh tests one kind only", arrived, failed)
		}
	}
}

// TestOptimalCache: a measurement reuses the latency-optimal paths only
// for the same nodes and underlay, and gives what it gives without the
// cache.
func TestOptimalCache(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := randomMesh(r, 25)
	want := measureMesh(in)
	in.optimal = &optimalCache{}
	for range 2 {
		if got := measureMesh(in); got != want {
			t.Fatalf("with the cache\n%+v\nwant\n%+v", got, want)
		}
	}
	// Another underlay (n0-n1 no longer partitioned), then fewer nodes.
	other := in
	other.latency = func(a, b string) (time.Duration, bool) { l, _ := in.latency(a, b); return l + time.Millisecond, true }
	other.optimal = nil
	want = measureMesh(other)
	other.optimal = in.optimal
	if got := measureMesh(other); got != want {
		t.Fatalf("another underlay, with the cache of the first\n%+v\nwant\n%+v", got, want)
	}
	fewer := in
	fewer.nodes = in.nodes[:20]
	fewer.optimal = nil
	want = measureMesh(fewer)
	fewer.optimal = in.optimal
	if got := measureMesh(fewer); got != want {
		t.Fatalf("fewer nodes, with the cache of all\n%+v\nwant\n%+v", got, want)
	}
}

// treeMesh is n nodes linked as a binary tree (node i's parent is
// (i−1)/2), every route following the tree, on an underlay of 1 ms plus
// the distance of two points drawn on a line 20 ms long.
func treeMesh(n int) meshInput {
	in := meshInput{links: map[string][]string{}, next: map[string]map[string]string{}}
	for i := range n {
		in.nodes = append(in.nodes, fmt.Sprintf("n%d", i))
	}
	parent := func(i int) int { return (i - 1) / 2 }
	for i := 1; i < n; i++ {
		a, p := in.nodes[i], in.nodes[parent(i)]
		in.links[a] = append(in.links[a], p)
		in.links[p] = append(in.links[p], a)
	}
	for a := range n {
		next := map[string]string{}
		for b := range n {
			if a == b {
				continue
			}
			// Down toward b when a is among b's ancestors, else up.
			hop := parent(a)
			for x := b; x > 0; x = parent(x) {
				if parent(x) == a {
					hop = x
					break
				}
			}
			next[in.nodes[b]] = in.nodes[hop]
		}
		in.next[in.nodes[a]] = next
	}
	r := rand.New(rand.NewPCG(1, 1))
	pos := map[string]float64{}
	for _, name := range in.nodes {
		pos[name] = r.Float64() * 20
	}
	in.latency = func(a, b string) (time.Duration, bool) {
		return time.Duration((1 + math.Abs(pos[a]-pos[b])) * float64(time.Millisecond)), true
	}
	return in
}

// BenchmarkMeasureMesh: a measurement of 1000 nodes, the first (the
// latency-optimal paths computed) and a later one (kept from the first).
func BenchmarkMeasureMesh(b *testing.B) {
	in := treeMesh(1000)
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			measureMesh(in)
		}
	})
	b.Run("again", func(b *testing.B) {
		in := in
		in.optimal = &optimalCache{}
		measureMesh(in)
		for b.Loop() {
			measureMesh(in)
		}
	})
}
