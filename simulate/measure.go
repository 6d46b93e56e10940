package simulate

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// MeshStats describes the mesh the running nodes built: how much of it is
// reachable, its shape, how good its paths are over the underlay, and
// (from Cluster.MeasureMesh) how much it changed and gossiped.
type MeshStats struct {
	Nodes int `json:"nodes"`
	// Pairs is the ordered pairs of running nodes; ReachablePairs those
	// where the first has a route to the second; Reachable their ratio.
	Pairs          int     `json:"pairs"`
	ReachablePairs int     `json:"reachable_pairs"`
	Reachable      float64 `json:"reachable"`
	// Links counts live links (each once); degrees count a node's links.
	Links      int     `json:"links"`
	MaxDegree  int     `json:"max_degree"`
	MeanDegree float64 `json:"mean_degree"`
	Isolated   int     `json:"isolated"` // nodes with no link
	// Components is the connected components of the link graph; Diameter
	// the longest shortest path, in links, between two connected nodes.
	Components int `json:"components"`
	Diameter   int `json:"diameter"`
	// Stretch is the mean, over routed pairs whose latency-optimal path
	// over the underlay is not zero, of the one-way latency of the route
	// (following next hops, each hop at its underlay latency) divided by
	// the latency-optimal path's (Dijkstra over every pair of running
	// nodes the underlay connects); MaxStretch the largest. StretchPairs
	// is how many pairs were compared (0: no underlay latency).
	Stretch      float64 `json:"stretch"`
	MaxStretch   float64 `json:"max_stretch"`
	StretchPairs int     `json:"stretch_pairs"`
	// WorstRoute names the route of MaxStretch: "a→b via a-x-b".
	WorstRoute string `json:"worst_route,omitempty"`
	// Unreached names up to maxExamples pairs without a route ("a→b",
	// comma-separated). Undelivered counts the routed pairs whose next
	// hops do not lead to the destination (a loop, or a node on the way
	// without a route); UndeliveredRoutes names up to maxExamples of them
	// as WorstRoute does.
	Unreached         string `json:"unreached,omitempty"`
	Undelivered       int    `json:"undelivered,omitempty"`
	UndeliveredRoutes string `json:"undelivered_routes,omitempty"`
	// StretchInside and StretchBetween split Stretch by pairs inside one
	// region of the underlay and pairs in different regions (0 when
	// none); HopsInside is the mean links a route inside a region takes.
	StretchInside  float64 `json:"stretch_inside,omitempty"`
	StretchBetween float64 `json:"stretch_between,omitempty"`
	HopsInside     float64 `json:"hops_inside,omitempty"`
	// LinkStretch is Stretch with each route replaced by the
	// lowest-latency path over the live links (each at its underlay
	// latency): what the links allow, so that Stretch − LinkStretch is
	// routing's part. LinksInside counts the links inside one region.
	LinkStretch float64 `json:"link_stretch,omitempty"`
	LinksInside int     `json:"links_inside,omitempty"`
	// Window is the time since the previous MeasureMesh (or the first
	// Discover); LinkChanges the link-up and link-down events the nodes
	// saw in it; Churn those per node per minute.
	Window      time.Duration `json:"window_ns"`
	LinkChanges int           `json:"link_changes"`
	Churn       float64       `json:"churn"`
	// Gossip is the gossip traffic in the window.
	Gossip GossipStats `json:"gossip"`
	// Coords is the share of (node, member) pairs of the running gossip
	// nodes where the node has the member's network coordinate (from the
	// member's gossip metadata or its own probe), CoordsMin the lowest
	// share of one node, and Probed the share where the node's own probes
	// measured the round trip (0 without gossip).
	Coords    float64 `json:"coords,omitempty"`
	CoordsMin float64 `json:"coords_min,omitempty"`
	Probed    float64 `json:"probed,omitempty"`
}

// meshInput is a snapshot of the mesh: nodes, their live links, their
// routes' next hops, and the underlay latency between two nodes (ok false
// when the underlay does not connect them).
type meshInput struct {
	nodes   []string
	links   map[string][]string          // node → peers it has a live link to
	next    map[string]map[string]string // node → destination → next hop (reachable routes)
	latency func(a, b string) (time.Duration, bool)
	region  func(a string) string // "" when not placed
	// optimal keeps the latency-optimal paths from one measurement to
	// the next (nil: computed each time).
	optimal *optimalCache
}

// measureMesh computes the reachability, shape and stretch of a snapshot.
func measureMesh(in meshInput) MeshStats {
	st := MeshStats{Nodes: len(in.nodes), MaxStretch: 0}
	index := make(map[string]int, len(in.nodes))
	for i, name := range in.nodes {
		index[name] = i
	}
	// The link graph, undirected, over running nodes only.
	adj := make([][]int, len(in.nodes))
	seen := map[[2]int]bool{}
	for _, a := range in.nodes {
		for _, b := range in.links[a] {
			j, ok := index[b]
			i := index[a]
			if !ok || i == j {
				continue
			}
			k := [2]int{min(i, j), max(i, j)}
			if seen[k] {
				continue
			}
			seen[k] = true
			adj[i] = append(adj[i], j)
			adj[j] = append(adj[j], i)
		}
	}
	st.Links = len(seen)
	for i := range adj {
		d := len(adj[i])
		st.MaxDegree = max(st.MaxDegree, d)
		if d == 0 {
			st.Isolated++
		}
	}
	if len(in.nodes) > 0 {
		st.MeanDegree = 2 * float64(st.Links) / float64(len(in.nodes))
	}
	// Components and diameter: BFS from every node.
	comp := make([]int, len(in.nodes))
	for i := range comp {
		comp[i] = -1
	}
	dist := make([]int, len(in.nodes))
	for s := range in.nodes {
		if comp[s] < 0 {
			st.Components++
		}
		for i := range dist {
			dist[i] = -1
		}
		dist[s] = 0
		for queue := []int{s}; len(queue) > 0; queue = queue[1:] {
			u := queue[0]
			if comp[u] < 0 {
				comp[u] = s
			}
			for _, v := range adj[u] {
				if dist[v] < 0 {
					dist[v] = dist[u] + 1
					st.Diameter = max(st.Diameter, dist[v])
					queue = append(queue, v)
				}
			}
		}
	}
	// Reachability and stretch.
	var sum, linkSum float64
	var in1, in2 struct {
		sum, hops float64
		n         int
	}
	for k := range seen {
		if a, b := in.nodes[k[0]], in.nodes[k[1]]; in.region != nil && in.region(a) != "" && in.region(a) == in.region(b) {
			st.LinksInside++
		}
	}
	overLinks := linkLatencies(in, adj)
	over := make([]uint64, len(in.nodes))
	var h costHeap
	lat := latencyMatrix(in)
	opt := in.optimal.matrix(in.nodes, lat)
	routes := routeLatencies(in, index, lat)
	for ai, a := range in.nodes {
		overLinks.costs(index[a], over, &h)
		for bi, b := range in.nodes {
			if a == b {
				continue
			}
			st.Pairs++
			if in.next[a][b] == "" {
				if st.Pairs-st.ReachablePairs <= maxExamples {
					st.Unreached = joinExample(st.Unreached, a+"→"+b)
				}
				continue
			}
			st.ReachablePairs++
			route, hops := routes.at(ai, bi)
			if hops < 0 {
				if st.Undelivered++; st.Undelivered <= maxExamples {
					st.UndeliveredRoutes = joinExample(st.UndeliveredRoutes, fmt.Sprintf("%s→%s via %s", a, b, routePath(in, a, b)))
				}
				continue
			}
			best := opt[ai][bi]
			if best == unconnected || best <= 0 {
				continue
			}
			r := float64(route) / float64(best)
			st.StretchPairs++
			sum += r
			viaLinks := route
			if o := over[index[b]]; o != unreached && time.Duration(o) < route {
				viaLinks = time.Duration(o)
			}
			linkSum += float64(viaLinks) / float64(best)
			if in.region != nil && in.region(a) != "" {
				w := &in2
				if in.region(a) == in.region(b) {
					w = &in1
					w.hops += float64(hops)
				}
				w.sum += r
				w.n++
			}
			if r > st.MaxStretch {
				st.MaxStretch, st.WorstRoute = r, fmt.Sprintf("%s→%s via %s", a, b, routePath(in, a, b))
			}
		}
	}
	if st.Pairs > 0 {
		st.Reachable = float64(st.ReachablePairs) / float64(st.Pairs)
	}
	if st.StretchPairs > 0 {
		st.Stretch = sum / float64(st.StretchPairs)
		st.LinkStretch = linkSum / float64(st.StretchPairs)
	}
	if in1.n > 0 {
		st.StretchInside, st.HopsInside = in1.sum/float64(in1.n), in1.hops/float64(in1.n)
	}
	if in2.n > 0 {
		st.StretchBetween = in2.sum / float64(in2.n)
	}
	return st
}

// routeTable is the one-way latency and the hop count of every route
// (following next hops, each hop at its underlay latency), indexed like
// in.nodes, source first.
type routeTable struct {
	n    int
	lat  []time.Duration
	hops []int32 // -1: the route loops, ends early or crosses a pair the underlay does not connect
}

// at is the route from node i to node j: its latency and hop count, hops
// -1 when it has none that ends at j.
func (t *routeTable) at(i, j int) (time.Duration, int) {
	k := i*t.n + j
	return t.lat[k], int(t.hops[k])
}

// routeLatencies follows the next hops of every route, one destination at
// a time: a node's route is its first hop's latency plus the rest of the
// route from that hop, so each node's route to a destination is followed
// once (not once per pair and hop, which at 1000 nodes was a third of a
// measurement). lat is latencyMatrix(in).
func routeLatencies(in meshInput, index map[string]int, lat [][]time.Duration) *routeTable {
	n := len(in.nodes)
	t := &routeTable{n: n, lat: make([]time.Duration, n*n), hops: make([]int32, n*n)}
	// next[a*n+b]: the index of a's next hop toward b; -1 none, -2 a node
	// not among in.nodes (its route cannot go on).
	next := make([]int32, n*n)
	for a, name := range in.nodes {
		row := in.next[name]
		for b, dest := range in.nodes {
			hop, ok := row[dest]
			switch j, known := index[hop]; {
			case !ok || hop == "":
				next[a*n+b] = -1
			case !known:
				next[a*n+b] = -2
			default:
				next[a*n+b] = int32(j)
			}
		}
	}
	const (
		unknown = iota
		visiting
		settled
	)
	state := make([]uint8, n)
	var stack []int
	for b := range n {
		clear(state)
		state[b] = settled // the destination: 0 hops, 0 latency
		for a := range n {
			if state[a] != unknown {
				continue
			}
			// Walk from a until a settled node, a dead end or a loop,
			// then settle the walk backwards.
			stack = stack[:0]
			at := a
			var lastLat time.Duration
			lastHops := int32(-1)
			for {
				if state[at] == settled {
					lastLat, lastHops = t.lat[at*n+b], t.hops[at*n+b]
					break
				}
				if state[at] == visiting { // a loop
					break
				}
				state[at] = visiting
				stack = append(stack, at)
				hop := next[at*n+b]
				if hop < 0 || lat[at][hop] == unconnected {
					break
				}
				at = int(hop)
			}
			for i := len(stack) - 1; i >= 0; i-- {
				u := stack[i]
				k := u*n + b
				if lastHops < 0 {
					t.lat[k], t.hops[k] = 0, -1
				} else {
					lastLat += lat[u][next[k]]
					lastHops++
					t.lat[k], t.hops[k] = lastLat, lastHops
				}
				state[u] = settled
			}
		}
	}
	return t
}

// routePath names the hops of a route that routeLatency followed to its
// end: "a-x-b".
func routePath(in meshInput, a, b string) string {
	path := []string{a}
	for at := a; at != b && len(path) <= len(in.nodes); {
		at = in.next[at][b]
		path = append(path, at)
	}
	return strings.Join(path, "-")
}

// linkLatencies is the live links (adj, indexed like in.nodes) as a
// denseGraph weighted by their underlay latency in nanoseconds; a pair the
// underlay does not connect carries nothing.
func linkLatencies(in meshInput, adj [][]int) *denseGraph {
	d := &denseGraph{adj: make([][]denseEdge, len(adj))}
	for i, nbrs := range adj {
		for _, j := range nbrs {
			if l, ok := in.latency(in.nodes[i], in.nodes[j]); ok {
				d.adj[i] = append(d.adj[i], denseEdge{j, uint64(l)})
			}
		}
	}
	return d
}

// unconnected marks a pair the underlay does not connect in a latency
// matrix, and a node no path reaches in latencyOptimal.
const unconnected = time.Duration(math.MaxInt64)

// latencyMatrix is in.latency between every two nodes (indexed like
// in.nodes), unconnected where the underlay does not connect them. It is
// made once per measurement: the Dijkstra from every node looks at every
// pair n times, and at 1000 nodes asking in.latency (map lookups of the
// regions, the places and the partition) each time was minutes of CPU
// per measurement.
func latencyMatrix(in meshInput) [][]time.Duration {
	n := len(in.nodes)
	lat := make([][]time.Duration, n)
	for i, a := range in.nodes {
		lat[i] = make([]time.Duration, n)
		for j, b := range in.nodes {
			if i == j {
				continue
			}
			if l, ok := in.latency(a, b); ok {
				lat[i][j] = l
			} else {
				lat[i][j] = unconnected
			}
		}
	}
	return lat
}

// latencyOptimal sets dist to the lowest one-way latency from node src to
// every node over the underlay lat (a dense Dijkstra: the underlay
// connects every pair it does not partition), unconnected for the nodes
// it does not reach; done is scratch of the same length.
func latencyOptimal(lat [][]time.Duration, src int, dist []time.Duration, done []bool) {
	n := len(lat)
	for i := range dist {
		dist[i], done[i] = unconnected, false
	}
	dist[src] = 0
	for range n {
		u := -1
		for i := range n {
			if !done[i] && dist[i] != unconnected && (u < 0 || dist[i] < dist[u]) {
				u = i
			}
		}
		if u < 0 {
			break
		}
		done[u] = true
		row := lat[u]
		for v := range n {
			if l := row[v]; !done[v] && l != unconnected && dist[u]+l < dist[v] {
				dist[v] = dist[u] + l
			}
		}
	}
}

// optimalCache keeps the latency-optimal one-way latency between every two
// nodes (latencyOptimal from each) for the nodes and latency matrix it was
// computed for: the underlay changes only with a partition or the nodes
// running, and at 1000 nodes the n Dijkstras over every pair were half of
// a measurement.
type optimalCache struct {
	mu    sync.Mutex
	nodes []string
	lat   [][]time.Duration
	opt   [][]time.Duration
}

// matrix returns the latency-optimal latency from every node to every
// node (indexed like nodes) over lat, reusing the previous result when
// nodes and lat are the same. A nil cache computes it.
func (c *optimalCache) matrix(nodes []string, lat [][]time.Duration) [][]time.Duration {
	if c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if slices.Equal(c.nodes, nodes) && slices.EqualFunc(c.lat, lat, slices.Equal) {
			return c.opt
		}
	}
	n := len(nodes)
	opt := make([][]time.Duration, n)
	done := make([]bool, n)
	for i := range n {
		opt[i] = make([]time.Duration, n)
		latencyOptimal(lat, i, opt[i], done)
	}
	if c != nil {
		c.nodes, c.lat, c.opt = slices.Clone(nodes), lat, opt
	}
	return opt
}

// MeasureMesh measures the mesh of the running nodes now (MeshStats),
// with the churn and gossip traffic since the previous MeasureMesh (or the
// first Discover), and starts a new window.
func (c *Cluster) MeasureMesh() (MeshStats, error) {
	names, _ := c.sides()
	in := meshInput{nodes: names, links: map[string][]string{}, next: map[string]map[string]string{}}
	var coordPairs, coordKnown, coordProbed, coordNodes int
	var coordMin float64
	for _, name := range names {
		n := c.Node(name)
		if n == nil {
			continue // killed meanwhile: its entries stay empty
		}
		for _, l := range n.Links() {
			in.links[name] = append(in.links[name], l.Peer)
		}
		next := map[string]string{}
		for _, p := range n.Peers() {
			if p.Reachable {
				next[p.Name] = p.NextHop
			}
		}
		in.next[name] = next
		if known, probed, members := n.Coordinates(); members > 0 {
			coordPairs += members
			coordKnown += known
			coordProbed += probed
			share := float64(known) / float64(members)
			if coordNodes == 0 || share < coordMin {
				coordMin = share
			}
			coordNodes++
		}
	}
	c.mu.Lock()
	gb := c.gossipOf()
	under, parted := gb.under, maps.Clone(gb.parted)
	start, before := gb.window, gb.windowAt
	now, stats := time.Now(), gb.g.stats()
	if start.IsZero() {
		start = now
		before = stats
	}
	gb.window, gb.windowAt = now, stats
	c.mu.Unlock()
	in.latency = func(a, b string) (time.Duration, bool) {
		if parted[mkpair(a, b)] {
			return 0, false
		}
		return under.Latency(a, b), true
	}
	if under != nil {
		in.region = func(a string) string { return under.Region[a] }
	}
	in.optimal = &c.optimal
	st := measureMesh(in)
	st.Window = now.Sub(start)
	for _, name := range names {
		evs, err := c.Events(name)
		if err != nil {
			return st, err
		}
		for _, e := range evs {
			if (e.Kind == "link-up" || e.Kind == "link-down") && !e.Time.Before(start) && !e.Time.After(now) {
				st.LinkChanges++
			}
		}
	}
	if st.Window > 0 && st.Nodes > 0 {
		st.Churn = float64(st.LinkChanges) / float64(st.Nodes) / st.Window.Minutes()
	}
	if coordPairs > 0 {
		st.Coords = float64(coordKnown) / float64(coordPairs)
		st.Probed = float64(coordProbed) / float64(coordPairs)
		st.CoordsMin = coordMin
	}
	st.Gossip = GossipStats{Packets: stats.Packets - before.Packets, PacketBytes: stats.PacketBytes - before.PacketBytes,
		Streams: stats.Streams - before.Streams, StreamBytes: stats.StreamBytes - before.StreamBytes}
	return st, nil
}

// maxExamples is how many unreached pairs and undelivered routes
// MeshStats names.
const maxExamples = 5

func joinExample(list, ex string) string {
	if list == "" {
		return ex
	}
	return list + ", " + ex
}

// String renders the statistics as lines of text for a report.
func (s MeshStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodes %d, links %d, reachable pairs %d of %d (%.1f %%)\n",
		s.Nodes, s.Links, s.ReachablePairs, s.Pairs, 100*s.Reachable)
	if s.Unreached != "" {
		fmt.Fprintf(&b, "without a route: %s\n", s.Unreached)
	}
	if s.Undelivered > 0 {
		fmt.Fprintf(&b, "routes that do not reach their destination: %d (%s)\n", s.Undelivered, s.UndeliveredRoutes)
	}
	fmt.Fprintf(&b, "degree max %d, mean %.2f, isolated %d; components %d, diameter %d hops\n",
		s.MaxDegree, s.MeanDegree, s.Isolated, s.Components, s.Diameter)
	if s.StretchPairs > 0 {
		fmt.Fprintf(&b, "path stretch vs the underlay: mean %.3f, max %.3f over %d routes (worst %s)\n", s.Stretch, s.MaxStretch, s.StretchPairs, s.WorstRoute)
		fmt.Fprintf(&b, "best paths over the links: stretch %.3f\n", s.LinkStretch)
		if s.StretchInside > 0 || s.StretchBetween > 0 {
			fmt.Fprintf(&b, "path stretch inside a region %.3f (%.2f hops), between regions %.3f; %d of %d links inside a region\n",
				s.StretchInside, s.HopsInside, s.StretchBetween, s.LinksInside, s.Links)
		}
	} else {
		b.WriteString("path stretch: no underlay latency to compare with\n")
	}
	if s.Coords > 0 {
		fmt.Fprintf(&b, "network coordinates known: %.1f %% of (node, member) pairs (lowest node %.1f %%); round trips probed: %.1f %%\n",
			100*s.Coords, 100*s.CoordsMin, 100*s.Probed)
	}
	fmt.Fprintf(&b, "in the last %v: %d link changes (%.2f per node per minute); gossip %d packets (%d bytes), %d streams (%d bytes)\n",
		round(s.Window), s.LinkChanges, s.Churn, s.Gossip.Packets, s.Gossip.PacketBytes, s.Gossip.Streams, s.Gossip.StreamBytes)
	return b.String()
}
