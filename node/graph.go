package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// Only names this node knows (routing has a route to them, or gossip lists
// them) appear: a name that only an answer's links give is neither queried
// nor listed, nor is a link to it drawn.
type Graph struct {
	// Origin is the node that gathered the graph.
	Origin string    `json:"origin"`
	Taken  time.Time `json:"taken"`
	// Nodes are the nodes that answered, sorted by name.
	Nodes []GraphNode `json:"nodes"`
	// Links are the links reported, one per pair of nodes, sorted: those
	// both ends reported, and those one end reported when the other did
	// not contradict it (see GraphLink.ReportedBy).
	Links []GraphLink `json:"links"`
	// Unreachable are the nodes routing knows, or gossip lists and an
	// answer's links named, that did not answer, sorted by name, with the
	// reason.
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
//
// A link only one end reports is kept when the other end did not answer,
// or answered with a truncated list of links (NodeInfo.LinksTruncated),
// with ReportedBy naming the end that reported it: nothing confirms it.
// A link the other end's full answer does not list is dropped.
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
	// ReportedBy is the one end that reported the link, when the other
	// did not answer or truncated its links; empty when both ends
	// reported it.
	ReportedBy string `json:"reported_by,omitempty"`
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
// and of every node it has a route to, concurrently (opt.Concurrency at a
// time, opt.Timeout each). Nodes that do not answer (no route, info
// service off, refused, too slow) are listed in Unreachable; the graph is
// partial then, never an error. A name an answer's links give is queried
// only when routing has a route to it, and listed (as not routed) only
// when gossip lists it; links are drawn as GraphLink says. So what one
// node's answer adds is its own node and at most MaxInfoLinks links, each
// to a node this node already knows and not denied by that node's answer.
// It fails only when ctx ends before any answer or the node is not
// running (ErrNotStarted before Start has succeeded, ErrClosed once Close
// has begun).
func (n *Node) Topology(ctx context.Context, opt TopologyOptions) (Graph, error) {
	if !n.running() {
		return Graph{}, fmt.Errorf("topology: %w", n.notRunning())
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
	known := make(map[string]bool, len(peers))
	for _, p := range peers {
		routes[p.Name], known[p.Name] = p, true
	}
	for _, m := range n.Members() {
		known[m.Name] = true
	}
	t := &topoWalk{n: n, opt: opt, known: known, seen: map[string]bool{}, answers: map[string]NodeInfo{}, errs: map[string]error{}}
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

	for name, info := range t.answers {
		gn := GraphNode{NodeInfo: info}
		if r, ok := routes[name]; ok {
			gn.Hops, gn.Cost = r.Hops, r.Cost
		}
		g.Nodes = append(g.Nodes, gn)
	}
	for name := range t.errs {
		t.known[name] = true // routing learned it during the walk
	}
	g.Links = graphLinks(t.answers, t.known)
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

// graphLinks are the links answers report between known nodes (or nodes
// that answered), one per pair, as GraphLink describes.
func graphLinks(answers map[string]NodeInfo, known map[string]bool) []GraphLink {
	type pair struct{ a, b string }
	byPair := map[pair]*GraphLink{}
	reporters := map[pair][]string{}
	for name, info := range answers {
		for _, l := range info.Links {
			if l.Peer == name {
				continue
			}
			if _, answered := answers[l.Peer]; !answered && !known[l.Peer] {
				continue
			}
			p := pair{name, l.Peer}
			if p.b < p.a {
				p.a, p.b = p.b, p.a
			}
			gl := byPair[p]
			if gl == nil {
				gl = &GraphLink{A: p.a, B: p.b}
				byPair[p] = gl
			}
			if !slices.Contains(reporters[p], name) {
				reporters[p] = append(reporters[p], name)
			}
			gl.RTT, gl.Loss, gl.Cost, gl.Streams = max(gl.RTT, l.RTT), max(gl.Loss, l.Loss), max(gl.Cost, l.Cost), max(gl.Streams, l.Streams)
		}
	}
	out := make([]GraphLink, 0, len(byPair))
	for p, gl := range byPair {
		if r := reporters[p]; len(r) == 1 {
			other := p.a
			if other == r[0] {
				other = p.b
			}
			if info, answered := answers[other]; answered && !info.LinksTruncated {
				continue // the other end answered in full without it
			}
			gl.ReportedBy = r[0]
		}
		gl.Quality = LinkQuality(gl.RTT, gl.Loss)
		out = append(out, *gl)
	}
	return out
}

// topoWalk is one Topology's queries: each node is queried once, at most
// opt.Concurrency at a time and opt.MaxNodes in all.
type topoWalk struct {
	n   *Node
	opt TopologyOptions
	sem chan struct{}
	wg  sync.WaitGroup
	// known are the names routing had a route to, or gossip listed, when
	// the walk started.
	known map[string]bool

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

// follow queries the nodes info's links name that routing has a route
// to, and lists those gossip lists without a route as unanswered. It
// ignores other names: they are only the answer's word.
func (t *topoWalk) follow(ctx context.Context, info NodeInfo) {
	for _, l := range info.Links {
		if p, ok := t.n.Peer(l.Peer); ok && p.Reachable {
			t.spawn(ctx, l.Peer)
		} else if ok || t.known[l.Peer] {
			t.mark(l.Peer, errNotRouted)
		}
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
