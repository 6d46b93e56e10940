package routingtest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/circuitmesh/circuitmesh/routing"
)

// Edge identifies an undirected link; A < B.
type Edge struct{ A, B string }

// MakeEdge orders a and b.
func MakeEdge(a, b string) Edge {
	if b < a {
		a, b = b, a
	}
	return Edge{a, b}
}

type link struct {
	cost routing.Metric
	up   bool
	cut  bool
}

type envelope struct {
	from, to string
	payload  []byte
	due      int
	seq      int
}

// Counters are cumulative network figures. Bytes counts the payload bytes
// of the messages sent.
type Counters struct {
	Sent, Delivered, Dropped, Malformed int
	Bytes                               int64
	// Overflow counts the messages dropped at sending because their
	// direction was full (LinkBytes, LinkMessages).
	Overflow int
}

// queued is what one direction of a link holds in flight.
type queued struct{ msgs, bytes int }

// Network is a set of engines joined by simulated links.
type Network struct {
	// Now is the current virtual time.
	Now time.Time
	// Step is the virtual time one round takes (default 50 ms).
	Step time.Duration
	// DropRate is the probability that a message is lost.
	DropRate float64
	// MaxDelay adds 0..MaxDelay extra rounds to each message, which also
	// reorders them.
	MaxDelay int
	// MinDelay adds MinDelay rounds to every message (before MaxDelay's
	// random part): links whose round trip is seconds, as on a loaded
	// machine, with a Step of tens of milliseconds.
	MinDelay int
	// InOrder keeps the messages of each direction of a link in the
	// order they were sent despite MaxDelay (a message is never delivered
	// before one sent earlier on its direction), as the control stream a
	// node sends them over does: the delays then differ between links
	// only.
	InOrder bool
	// OnEvent, if set, sees every event every engine emits.
	OnEvent func(node string, ev routing.Event)
	// OnSend, if set, sees every message every engine sends, as it
	// leaves the engine (before any drop): the engine's table is then
	// still the one the message was built from.
	OnSend func(from, to string, payload []byte)
	// Accept, if set, is asked about every message as it reaches its
	// destination: one it refuses is delivered to no engine and counted
	// in Counters.Malformed, as a node of another release refuses a
	// message of a wire version it does not read.
	Accept func(from, to string, payload []byte) bool
	// TrackChanged makes the network record the destinations of the
	// events (TakeChanged). It is off by default: a cold start of 1000
	// engines emits 1.7 million events, and recording them was work of
	// the harness counted in a benchmark of the engines.
	TrackChanged bool
	// LinkBytes and LinkMessages, if positive, bound the payload bytes
	// and the messages in flight per link and direction, as a link's
	// control queue does: a message sent beyond either bound is dropped
	// (counted in Counters.Dropped and Counters.Overflow), unless nothing
	// is in flight on that direction.
	LinkBytes, LinkMessages int

	Counters Counters
	Round    int

	rng      *rand.Rand
	engines  map[string]*routing.Engine
	leaf     map[string]bool
	names    []string
	links    map[Edge]*link
	isolated map[string]bool
	inflight []envelope
	due      []envelope // scratch of StepRound
	// Scratch of byDestination: the other buffer of envelopes, each
	// one's destination and the start of each destination's run; pos
	// gives each name's index in names (nil when stale).
	sorted  []envelope
	dst     []int
	starts  []int
	pos     map[string]int
	seq     int
	changed map[string]bool
	queued  map[[2]string]queued // by (from, to), while LinkBytes or LinkMessages is set
	// The latest round a message is due on each direction (from, to),
	// while InOrder is set.
	lastDue map[[2]string]int
}

// New returns an empty network whose randomness comes from seed.
func New(seed int64) *Network {
	return &Network{
		Now:      time.Unix(1_700_000_000, 0),
		Step:     50 * time.Millisecond,
		rng:      rand.New(rand.NewPCG(uint64(seed), 7)),
		engines:  make(map[string]*routing.Engine),
		leaf:     make(map[string]bool),
		links:    make(map[Edge]*link),
		isolated: make(map[string]bool),
		changed:  make(map[string]bool),
		queued:   make(map[[2]string]queued),
		lastDue:  make(map[[2]string]int),
	}
}

// AddNode creates an engine for cfg (cfg.Self names the node).
func (n *Network) AddNode(cfg routing.Config) error {
	if _, ok := n.engines[cfg.Self]; ok {
		return fmt.Errorf("routingtest: node %q exists", cfg.Self)
	}
	e, err := routing.New(cfg)
	if err != nil {
		return fmt.Errorf("routingtest: node %q: %w", cfg.Self, err)
	}
	n.engines[cfg.Self] = e
	n.leaf[cfg.Self] = cfg.Leaf
	n.names = append(n.names, cfg.Self)
	slices.Sort(n.names)
	n.pos = nil
	return nil
}

// Engine returns the engine of node name, or nil.
func (n *Network) Engine(name string) *routing.Engine { return n.engines[name] }

// Names returns the live node names, sorted.
func (n *Network) Names() []string { return n.names }

// IsLeaf reports whether node name was configured as a leaf.
func (n *Network) IsLeaf(name string) bool { return n.leaf[name] }

// Link brings up a link between a and b with the given cost, reporting it to
// both engines. Linking an existing link changes its cost and brings it up.
func (n *Network) Link(a, b string, cost routing.Metric) error {
	ea, eb := n.engines[a], n.engines[b]
	if ea == nil || eb == nil || a == b {
		return fmt.Errorf("routingtest: cannot link %q and %q", a, b)
	}
	l := n.links[MakeEdge(a, b)]
	if l == nil {
		l = &link{}
		n.links[MakeEdge(a, b)] = l
	}
	l.cost, l.up = cost, true
	ea.LinkUp(n.Now, b, cost, n.leaf[b])
	n.drain(a)
	eb.LinkUp(n.Now, a, cost, n.leaf[a])
	n.drain(b)
	return nil
}

// SetCost changes the cost of an up link.
func (n *Network) SetCost(a, b string, cost routing.Metric) error {
	l := n.links[MakeEdge(a, b)]
	if l == nil || !l.up {
		return fmt.Errorf("routingtest: no link %s-%s", a, b)
	}
	l.cost = cost
	for _, p := range [][2]string{{a, b}, {b, a}} {
		n.engines[p[0]].LinkCost(n.Now, p[1], cost)
		n.drain(p[0])
	}
	return nil
}

// Do calls f with node's engine and collects what it output, as the
// network does after the engine's own inputs: for the calls that have no
// method here (routing.Engine.Drain).
func (n *Network) Do(node string, f func(e *routing.Engine)) {
	if e := n.engines[node]; e != nil {
		f(e)
		n.drain(node)
	}
}

// Unlink takes a link down, reporting it to both engines. The link keeps
// its cost for a later Relink.
func (n *Network) Unlink(a, b string) error {
	l := n.links[MakeEdge(a, b)]
	if l == nil || !l.up {
		return fmt.Errorf("routingtest: no link %s-%s", a, b)
	}
	l.up = false
	for _, p := range [][2]string{{a, b}, {b, a}} {
		if e := n.engines[p[0]]; e != nil {
			e.LinkDown(n.Now, p[1])
			n.drain(p[0])
		}
	}
	return nil
}

// Relink brings a link taken down by Unlink back up at its old cost.
func (n *Network) Relink(a, b string) error {
	l := n.links[MakeEdge(a, b)]
	if l == nil {
		return fmt.Errorf("routingtest: no link %s-%s", a, b)
	}
	return n.Link(a, b, l.cost)
}

// Cut silently drops messages on a link (both ways) while both engines keep
// it up, as a link does before its failure is detected. Uncut restores it.
func (n *Network) Cut(a, b string, cut bool) {
	if l := n.links[MakeEdge(a, b)]; l != nil {
		l.cut = cut
	}
}

// Isolate drops every message to or from node without telling any engine.
func (n *Network) Isolate(node string, isolated bool) { n.isolated[node] = isolated }

// Kill removes a node: every link to it goes down (reported to its
// neighbours) and its engine is discarded.
func (n *Network) Kill(node string) {
	for ed, l := range n.sortedLinks() {
		if l.up && (ed.A == node || ed.B == node) {
			_ = n.Unlink(ed.A, ed.B)
		}
	}
	for ed := range n.links {
		if ed.A == node || ed.B == node {
			delete(n.links, ed)
		}
	}
	for k := range n.lastDue {
		if k[0] == node || k[1] == node {
			delete(n.lastDue, k)
		}
	}
	delete(n.engines, node)
	n.names = slices.DeleteFunc(n.names, func(s string) bool { return s == node })
	n.pos = nil
}

// Partition takes down every up link between nodes of different groups and
// returns those links so that they can be healed with Relink. Nodes in no
// group form a group of their own.
func (n *Network) Partition(groups ...[]string) []Edge {
	g := make(map[string]int)
	for i, grp := range groups {
		for _, name := range grp {
			g[name] = i + 1
		}
	}
	var cut []Edge
	for ed, l := range n.sortedLinks() {
		if l.up && g[ed.A] != g[ed.B] {
			_ = n.Unlink(ed.A, ed.B)
			cut = append(cut, ed)
		}
	}
	return cut
}

// sortedLinks iterates links in a deterministic order.
func (n *Network) sortedLinks() func(func(Edge, *link) bool) {
	edges := make([]Edge, 0, len(n.links))
	for ed := range n.links {
		edges = append(edges, ed)
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].A != edges[j].A {
			return edges[i].A < edges[j].A
		}
		return edges[i].B < edges[j].B
	})
	return func(yield func(Edge, *link) bool) {
		for _, ed := range edges {
			if !yield(ed, n.links[ed]) {
				return
			}
		}
	}
}

// Graph returns the up links and their costs as an adjacency map.
func (n *Network) Graph() map[string]map[string]routing.Metric {
	g := make(map[string]map[string]routing.Metric, len(n.names))
	for _, name := range n.names {
		g[name] = make(map[string]routing.Metric)
	}
	for ed, l := range n.links {
		if l.up {
			g[ed.A][ed.B] = l.cost
			g[ed.B][ed.A] = l.cost
		}
	}
	return g
}

// drain collects the outputs of node's engine.
func (n *Network) drain(node string) {
	e := n.engines[node]
	if e == nil {
		return
	}
	rd := e.Ready()
	for _, ev := range rd.Events {
		if n.TrackChanged {
			n.changed[ev.Dest] = true
		}
		if n.OnEvent != nil {
			n.OnEvent(node, ev)
		}
	}
	for _, m := range rd.Messages {
		if n.OnSend != nil {
			n.OnSend(node, m.To, m.Payload)
		}
		n.Counters.Sent++
		n.Counters.Bytes += int64(len(m.Payload))
		if n.LinkBytes > 0 || n.LinkMessages > 0 {
			k := [2]string{node, m.To}
			q := n.queued[k]
			if q.msgs > 0 && (n.LinkMessages > 0 && q.msgs >= n.LinkMessages || n.LinkBytes > 0 && q.bytes+len(m.Payload) > n.LinkBytes) {
				n.Counters.Dropped++
				n.Counters.Overflow++
				continue
			}
			n.queued[k] = queued{q.msgs + 1, q.bytes + len(m.Payload)}
		}
		delay := 1 + n.MinDelay
		if n.MaxDelay > 0 {
			delay += n.rng.IntN(n.MaxDelay + 1)
		}
		due := n.Round + delay
		if n.InOrder {
			k := [2]string{node, m.To}
			if last := n.lastDue[k]; last > due {
				due = last
			}
			n.lastDue[k] = due
		}
		n.seq++
		n.inflight = append(n.inflight, envelope{from: node, to: m.To, payload: m.Payload, due: due, seq: n.seq})
	}
}

// TakeChanged returns the destinations whose route changed at some node
// (any event) since the previous call while TrackChanged was set, sorted. A check of loop freedom
// needs to look only at these.
func (n *Network) TakeChanged() []string {
	out := slices.Sorted(maps.Keys(n.changed))
	clear(n.changed)
	return out
}

// InFlight returns the number of undelivered messages.
func (n *Network) InFlight() int { return len(n.inflight) }

// StepRound advances one round: time moves by Step, the messages due are
// dropped or delivered and due timers fire, engine by engine in the order
// of their names (each engine's messages in send order, then its Tick).
// It returns the number of messages delivered.
func (n *Network) StepRound() int {
	n.Round++
	n.Now = n.Now.Add(n.Step)
	// The messages due move to a buffer kept between rounds, the others
	// stay in place (a thousand engines send over a hundred thousand
	// messages: fresh slices every round were a tenth of a node death's
	// CPU time).
	due, later := n.due[:0], n.inflight[:0]
	for _, m := range n.inflight {
		if m.due <= n.Round {
			due = append(due, m)
		} else {
			later = append(later, m)
		}
	}
	clear(n.inflight[len(later):])
	n.inflight = later
	bySeq := func(a, b envelope) int { return a.seq - b.seq }
	if !slices.IsSortedFunc(due, bySeq) {
		slices.SortStableFunc(due, bySeq)
	}
	defer func() {
		clear(due) // drop the payloads
		n.due = due[:0]
	}()
	// Which messages are lost is decided in send order (the random
	// drops, the links' state), so that it does not depend on the order
	// of delivery below.
	kept := due[:0]
	for _, m := range due {
		if q, ok := n.queued[[2]string{m.from, m.to}]; ok {
			q.msgs--
			q.bytes -= len(m.payload)
			if q.msgs == 0 {
				delete(n.queued, [2]string{m.from, m.to})
			} else {
				n.queued[[2]string{m.from, m.to}] = q
			}
		}
		l := n.links[MakeEdge(m.from, m.to)]
		if n.engines[m.to] == nil || l == nil || !l.up || l.cut || n.isolated[m.from] || n.isolated[m.to] ||
			(n.DropRate > 0 && n.rng.Float64() < n.DropRate) {
			n.Counters.Dropped++
			continue
		}
		kept = append(kept, m)
	}
	clear(due[len(kept):])
	due = kept
	// Each engine then takes its messages of the round (in send order)
	// and its Tick, one engine after the other in the order of their
	// names. Receive only updates the table and queues what goes out at
	// the next Tick, and a message sent in a round is delivered in a
	// later one, so every engine ends the round in the same state, and
	// sends the same messages in the same order, as when the round's
	// messages were delivered interleaved in send order and then every
	// engine ticked: but each engine's table is touched once per round
	// instead of a few times interleaved with a thousand others (a node
	// has one table, which stays in its caches).
	// By destination, then in send order (seq).
	due = n.byDestination(due)
	i := 0
	for _, name := range n.names {
		e := n.engines[name]
		for ; i < len(due) && due[i].to == name; i++ {
			m := due[i]
			n.Counters.Delivered++
			if n.Accept != nil && !n.Accept(m.from, m.to, m.payload) {
				n.Counters.Malformed++
				continue
			}
			if err := e.Receive(n.Now, m.from, m.payload); err != nil {
				n.Counters.Malformed++
			}
			n.drain(name)
		}
		if nt := e.NextTick(); !nt.IsZero() && !nt.After(n.Now) {
			e.Tick(n.Now)
			n.drain(name)
		}
	}
	delivered := len(due)
	return delivered
}

// byDestination returns due (in send order, to live nodes) ordered by
// destination, in the order of names, then in send order, in the other
// buffer, and keeps due's for the next call. A counting sort: sorting by
// name took 180 million of the 9 billion instructions of a cold start at
// 1000 nodes (a stable sort, an insertion sort and merges in place, took
// more still).
func (n *Network) byDestination(due []envelope) []envelope {
	if n.pos == nil {
		n.pos = make(map[string]int, len(n.names))
		for i, name := range n.names {
			n.pos[name] = i
		}
	}
	starts := slices.Grow(n.starts[:0], len(n.names)+1)[:len(n.names)+1]
	clear(starts)
	dst := slices.Grow(n.dst[:0], len(due))[:len(due)]
	for i, m := range due {
		d := n.pos[m.to]
		dst[i] = d
		starts[d+1]++
	}
	for i := 1; i < len(starts); i++ {
		starts[i] += starts[i-1]
	}
	out := slices.Grow(n.sorted[:0], len(due))[:len(due)]
	for i, m := range due {
		out[starts[dst[i]]] = m
		starts[dst[i]]++
	}
	clear(due) // drop the payloads
	n.sorted, n.dst, n.starts = due[:0], dst, starts
	return out
}

// RunUntilQuiet steps until no message is in flight and no engine holds
// updates back for its rate limit (Engine.Pending), at most max rounds. It
// returns the rounds taken and whether the network became quiet.
func (n *Network) RunUntilQuiet(max int) (int, bool) {
	for i := 1; i <= max; i++ {
		n.StepRound()
		if n.Quiet() {
			return i, true
		}
	}
	return max, false
}

// Quiet reports whether no message is in flight and no engine holds
// updates back for its rate limit (Engine.Pending).
func (n *Network) Quiet() bool {
	if len(n.inflight) > 0 {
		return false
	}
	for _, name := range n.names {
		if n.engines[name].Pending() {
			return false
		}
	}
	return true
}

// RunFor steps the network for d of virtual time.
func (n *Network) RunFor(d time.Duration) {
	for end := n.Now.Add(d); n.Now.Before(end); {
		n.StepRound()
	}
}
