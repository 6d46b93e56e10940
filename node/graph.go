package node

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// TopologyOptions tunes Topology. Zero fields mean defaults.
type TopologyOptions struct {
	// Concurrency bounds the info queries in flight. Default 8.
	Concurrency int
	// Timeout bounds the query of one node. Default 3s.
	Timeout time.Duration
	// MaxNodes bounds the nodes queried. Default Limits.MaxRoutes.
	MaxNodes int
}

// Graph is the mesh as seen from one node: every node that answered its
// info service, the links they reported, and the nodes that did not answer.
type Graph struct {
	// Origin is the node that gathered the graph.
	Origin string    `json:"origin"`
	Taken  time.Time `json:"taken"`
	// Nodes are the nodes that answered, sorted by name.
	Nodes []GraphNode `json:"nodes"`
	// Links are the links reported, one per pair of nodes, sorted.
	Links []GraphLink `json:"links"`
	// Unreachable are the nodes routing or a neighbour's links named that
	// did not answer, sorted by name, with the reason.
	Unreachable []Unanswered `json:"unreachable"`
}

// GraphNode is one node that answered.
type GraphNode struct {
	NodeInfo
	// Hops and Cost are the origin's route to the node (0 for the origin).
	Hops int    `json:"hops"`
	Cost uint32 `json:"route_cost"`
}

// GraphLink is a link between two nodes, A < B by name. When both ends
// reported it, the worse of the two reports is kept (the larger RTT,
// loss and cost, and the larger stream count).
type GraphLink struct {
	A       string        `json:"a"`
	B       string        `json:"b"`
	RTT     time.Duration `json:"rtt_ns"`
	Loss    float64       `json:"loss"`
	Cost    uint32        `json:"cost"`
	Streams int           `json:"streams"`
	// Quality classes the link for display: "good", "fair" or "poor"
	// (see LinkQuality).
	Quality string `json:"quality"`
}

// Unanswered is a node that was not in the graph's answers.
type Unanswered struct {
	Name  string `json:"name"`
	Error string `json:"error"`
}

// LinkQuality classes a link: "poor" with 5% loss or more, or a round trip
// of 250 ms or more; "fair" with 1% loss or more, or 50 ms or more; else
// "good".
func LinkQuality(rtt time.Duration, loss float64) string {
	switch {
	case loss >= 0.05 || rtt >= 250*time.Millisecond:
		return "poor"
	case loss >= 0.01 || rtt >= 50*time.Millisecond:
		return "fair"
	}
	return "good"
}

// errNotRouted: routing knows the node but has no route to it, so
// Topology does not query it.
var errNotRouted = errors.New("no route")

// Topology gathers the mesh graph: it asks the info service of this node
// and of every node it has a route to, and of every node their links
// name, concurrently (opt.Concurrency at a time, opt.Timeout each). Nodes
// that do not answer (no route, info service off, refused, too slow) are
// listed in Unreachable; the graph is partial then, never an error. It
// fails only when ctx ends before any answer or the node is not running.
func (n *Node) Topology(ctx context.Context, opt TopologyOptions) (Graph, error) {
	if !n.running() {
		return Graph{}, fmt.Errorf("topology: %w", ErrNotStarted)
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 8
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 3 * time.Second
	}
	if opt.MaxNodes <= 0 {
		opt.MaxNodes = n.cfg.Limits.MaxRoutes
	}
	g := Graph{Origin: n.cfg.Name, Taken: time.Now(), Nodes: []GraphNode{}, Links: []GraphLink{}, Unreachable: []Unanswered{}}
	peers := n.Peers()
	routes := make(map[string]PeerInfo, len(peers))
	for _, p := range peers {
		routes[p.Name] = p
	}
	t := &topoWalk{n: n, opt: opt, seen: map[string]bool{}, answers: map[string]NodeInfo{}, errs: map[string]error{}}
	t.sem = make(chan struct{}, opt.Concurrency)
	local := n.LocalInfo()
	t.seen[n.cfg.Name] = true
	t.answers[n.cfg.Name] = local
	for _, p := range peers {
		if p.Reachable {
			t.spawn(ctx, p.Name)
		} else {
			t.mark(p.Name, errNotRouted)
		}
	}
	t.follow(ctx, local)
	t.wg.Wait()
	if err := ctx.Err(); err != nil && len(t.answers) == 1 && len(t.errs) > 0 {
		return Graph{}, fmt.Errorf("topology: %w", err)
	}

	type pair struct{ a, b string }
	byPair := map[pair]*GraphLink{}
	for name, info := range t.answers {
		gn := GraphNode{NodeInfo: info}
		if r, ok := routes[name]; ok {
			gn.Hops, gn.Cost = r.Hops, r.Cost
		}
		g.Nodes = append(g.Nodes, gn)
		for _, l := range info.Links {
			p := pair{name, l.Peer}
			if p.b < p.a {
				p.a, p.b = p.b, p.a
			}
			gl := byPair[p]
			if gl == nil {
				gl = &GraphLink{A: p.a, B: p.b}
				byPair[p] = gl
			}
			gl.RTT, gl.Loss, gl.Cost, gl.Streams = max(gl.RTT, l.RTT), max(gl.Loss, l.Loss), max(gl.Cost, l.Cost), max(gl.Streams, l.Streams)
		}
	}
	for _, gl := range byPair {
		gl.Quality = LinkQuality(gl.RTT, gl.Loss)
		g.Links = append(g.Links, *gl)
	}
	for name, err := range t.errs {
		g.Unreachable = append(g.Unreachable, Unanswered{Name: name, Error: err.Error()})
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].Name < g.Nodes[j].Name })
	sort.Slice(g.Links, func(i, j int) bool {
		if g.Links[i].A != g.Links[j].A {
			return g.Links[i].A < g.Links[j].A
		}
		return g.Links[i].B < g.Links[j].B
	})
	sort.Slice(g.Unreachable, func(i, j int) bool { return g.Unreachable[i].Name < g.Unreachable[j].Name })
	return g, nil
}

// topoWalk is one Topology's queries: each node is queried once, at most
// opt.Concurrency at a time and opt.MaxNodes in all.
type topoWalk struct {
	n   *Node
	opt TopologyOptions
	sem chan struct{}
	wg  sync.WaitGroup

	mu      sync.Mutex
	seen    map[string]bool
	answers map[string]NodeInfo
	errs    map[string]error
}

// spawn queries name unless it was already queried or marked.
func (t *topoWalk) spawn(ctx context.Context, name string) {
	t.mu.Lock()
	if t.seen[name] {
		t.mu.Unlock()
		return
	}
	if len(t.seen) >= t.opt.MaxNodes {
		t.mu.Unlock()
		return
	}
	t.seen[name] = true
	t.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		select {
		case t.sem <- struct{}{}:
		case <-ctx.Done():
			t.record(name, NodeInfo{}, ctx.Err())
			return
		}
		qctx, cancel := context.WithTimeout(ctx, t.opt.Timeout)
		info, err := t.n.Info(qctx, name)
		cancel()
		<-t.sem
		t.record(name, info, err)
		if err == nil {
			t.follow(ctx, info)
		}
	}()
}

// follow queries the nodes info's links name.
func (t *topoWalk) follow(ctx context.Context, info NodeInfo) {
	for _, l := range info.Links {
		t.spawn(ctx, l.Peer)
	}
}

// mark lists name as unanswered without querying it (unless it was).
func (t *topoWalk) mark(name string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.seen[name] && len(t.seen) < t.opt.MaxNodes {
		t.seen[name] = true
		t.errs[name] = err
	}
}

func (t *topoWalk) record(name string, info NodeInfo, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.errs[name] = err
		return
	}
	t.answers[name] = info
}
