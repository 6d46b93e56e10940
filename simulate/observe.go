package simulate

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// maxEvents bounds the events kept per node; older ones are dropped.
const maxEvents = 4096

// Past eventBudget / maxEvents nodes (1024) a cluster keeps fewer events
// per node, eventBudget in all (64 MiB of entries), but never fewer than
// minEvents per node: at 5000 nodes 838 instead of 4096, 13 KiB a node
// instead of 64. A cold start then fills every log anyway (a peer-up for
// each of the other nodes).
const (
	eventBudget = 4 << 20
	minEvents   = 512
)

// eventLimit is the events kept per node in a cluster of nodes nodes.
func eventLimit(nodes int) int {
	return max(minEvents, min(maxEvents, eventBudget/max(nodes, 1)))
}

// Event is a node event (node.Subscribe) recorded by the cluster.
type Event struct {
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	Kind string    `json:"kind"` // peer-up, peer-down, link-up, link-down
	Peer string    `json:"peer"`
	Err  string    `json:"error,omitempty"`
}

// eventLog keeps the latest events of one node across its restarts. Its
// entries are compact (16 bytes: the peer is a number in the cluster's
// name table, an error a rare side entry): 5000 nodes keep up to twenty
// million of them.
type eventLog struct {
	name    string
	names   *nameTable
	mu      sync.Mutex
	limit   int            // events kept (eventLimit)
	events  []logEntry     // a ring once it holds limit
	oldest  int            // index of the oldest event when full
	dropped int            // events overwritten; the oldest kept is event number dropped
	errs    map[int]string // event number -> its error, for the kept events that have one
}

func newEventLog(name string, names *nameTable, limit int) *eventLog {
	return &eventLog{name: name, names: names, limit: limit}
}

// logEntry is one recorded event.
type logEntry struct {
	at     int64  // Unix nanoseconds
	peer   uint32 // in the name table
	kind   uint8  // a node.EventKind
	hasErr bool
}

// add records ev. It is the node's SubscribeFunc callback, so it only
// copies and returns.
func (l *eventLog) add(ev node.Event) {
	e := logEntry{at: ev.Time.UnixNano(), peer: l.names.id(ev.Peer), kind: uint8(ev.Kind), hasErr: ev.Err != nil}
	l.mu.Lock()
	defer l.mu.Unlock()
	num := l.dropped + len(l.events)
	if len(l.events) < l.limit {
		if len(l.events) == cap(l.events) { // grow towards limit, not past it
			grown := make([]logEntry, len(l.events), min(max(2*len(l.events), 16), l.limit))
			copy(grown, l.events)
			l.events = grown
		}
		l.events = append(l.events, e)
	} else { // a ring from here on: overwrite the oldest
		if l.events[l.oldest].hasErr {
			delete(l.errs, l.dropped)
		}
		l.events[l.oldest] = e
		l.oldest = (l.oldest + 1) % l.limit
		l.dropped++
	}
	if ev.Err != nil {
		if l.errs == nil {
			l.errs = make(map[int]string)
		}
		l.errs[num] = ev.Err.Error()
	}
}

// event is e, event number num, as an Event; l.mu is held.
func (l *eventLog) event(e logEntry, num int) Event {
	ev := Event{Time: time.Unix(0, e.at), Node: l.name, Kind: node.EventKind(e.kind).String(), Peer: l.names.name(e.peer)}
	if e.hasErr {
		ev.Err = l.errs[num]
	}
	return ev
}

// nameTable numbers the node names events name, so that an entry keeps
// four bytes instead of a string. Names are added, never removed: they
// are the cluster's nodes and the peers they report.
type nameTable struct {
	mu    sync.RWMutex
	ids   map[string]uint32
	names []string
}

func (t *nameTable) id(name string) uint32 {
	t.mu.RLock()
	id, ok := t.ids[name]
	t.mu.RUnlock()
	if ok {
		return id
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[name]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = make(map[string]uint32)
	}
	id = uint32(len(t.names))
	t.ids[name] = id
	t.names = append(t.names, name)
	return id
}

func (t *nameTable) name(id uint32) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.names[id]
}

// Events returns the recorded events of the node (the latest 4096), oldest
// first. Recording ends when the cluster starts closing.
func (c *Cluster) Events(name string) ([]Event, error) {
	c.mu.Lock()
	m := c.members[name]
	c.mu.Unlock()
	if m == nil {
		return nil, fmt.Errorf("events of %s: %w", name, ErrUnknownNode)
	}
	l := m.events
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, 0, len(l.events))
	num := l.dropped
	for _, e := range l.events[l.oldest:] {
		out = append(out, l.event(e, num))
		num++
	}
	for _, e := range l.events[:l.oldest] {
		out = append(out, l.event(e, num))
		num++
	}
	return out, nil
}

// Peers returns the routing table of a running node.
func (c *Cluster) Peers(name string) ([]node.PeerInfo, error) {
	n, err := c.live(name)
	if err != nil {
		return nil, fmt.Errorf("peers of %s: %w", name, err)
	}
	return n.Peers(), nil
}

// Links returns the live links of a running node.
func (c *Cluster) Links(name string) ([]node.LinkInfo, error) {
	n, err := c.live(name)
	if err != nil {
		return nil, fmt.Errorf("links of %s: %w", name, err)
	}
	return n.Links(), nil
}

// Route returns from's route to to; ok is false when to is unreachable.
// A from or to that is no node of the cluster fails with ErrUnknownNode.
func (c *Cluster) Route(from, to string) (p node.PeerInfo, ok bool, err error) {
	n, err := c.liveTo(from, to)
	if err != nil {
		return p, false, fmt.Errorf("route %s→%s: %w", from, to, err)
	}
	p, known := n.Peer(to)
	return p, known && p.Reachable, nil
}

// components labels every running node with its connected component in
// the current topology: edges that are not cut between running nodes.
func (c *Cluster) components() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	adj := map[string][]string{}
	for _, e := range c.edges {
		if !e.cut && c.members[e.a].n != nil && c.members[e.b].n != nil {
			adj[e.a] = append(adj[e.a], e.b)
			adj[e.b] = append(adj[e.b], e.a)
		}
	}
	comp := map[string]int{}
	for i, name := range c.order {
		if _, seen := comp[name]; seen || c.members[name].n == nil {
			continue
		}
		comp[name] = i
		for queue := []string{name}; len(queue) > 0; queue = queue[1:] {
			for _, next := range adj[queue[0]] {
				if _, seen := comp[next]; !seen {
					comp[next] = i
					queue = append(queue, next)
				}
			}
		}
	}
	return comp
}

// Converged checks that every running node reaches exactly the running
// nodes connected to it in the current topology. The error names the
// first disagreement. The node that disagreed last time is checked first,
// so that a wait that polls Converged reads one routing table per poll
// until that node agrees, not every table up to it.
func (c *Cluster) Converged() error {
	_, err := c.converged(false)
	return err
}

// converged is Converged; with stretch, a check that succeeds also
// measures the routes' stretch (RouteStretch) from the routing tables it
// read.
func (c *Cluster) converged(stretch bool) (*Stretch, error) {
	comp := c.components()
	names := make([]string, 0, len(comp))
	for name := range comp {
		names = append(names, name)
	}
	sort.Strings(names)
	c.mu.Lock()
	hint := c.unconverged
	down := map[string]bool{}
	for name, m := range c.members {
		if m.n == nil {
			down[name] = true
		}
	}
	c.mu.Unlock()
	order := names
	if _, ok := comp[hint]; ok {
		order = append([]string{hint}, slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == hint })...)
	}
	size := map[string]int{} // each node's component's size
	count := map[int]int{}
	for _, k := range comp {
		count[k]++
	}
	for name, k := range comp {
		size[name] = count[k]
	}
	// First what the nodes' event counts rule out, reading no table:
	// while routes spread, most checks end here.
	for _, from := range order {
		if err := c.reachCounted(from, size[from]-1); err != nil {
			c.mu.Lock()
			c.unconverged = from
			c.mu.Unlock()
			return nil, err
		}
	}
	var meter *stretchMeter
	for _, from := range order {
		peers, err := c.convergedAt(from, names, comp, size, down)
		if err != nil {
			c.mu.Lock()
			c.unconverged = from
			c.mu.Unlock()
			return nil, err
		}
		if stretch {
			if meter == nil { // once a node agrees: the pass may succeed
				meter = c.newStretchMeter()
			}
			meter.add(from, peers)
		}
	}
	if meter == nil {
		return nil, nil
	}
	return &meter.st, nil
}

// reachProgress says how far routing has got towards convergence, from
// the nodes' peer-up and peer-down counts (no routing table is read): the
// (node, destination) pairs reachable against those a converged cluster
// has, the nodes that reach all theirs, and on in-memory links the
// routing payloads in flight. For progress lines, which a long wait
// prints while routes spread.
func (c *Cluster) reachProgress() string {
	comp := c.components()
	size := map[int]int{}
	for _, k := range comp {
		size[k]++
	}
	var reached, want int64
	done := 0
	c.mu.Lock()
	for name, k := range comp {
		m := c.members[name]
		if m.reach == nil {
			continue
		}
		got, w := m.reach.Load(), int64(size[k]-1)
		reached, want = reached+min(got, w), want+w
		if got == w {
			done++
		}
	}
	c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "pairs reachable %d of %d", reached, want)
	if want > 0 {
		fmt.Fprintf(&b, " (%.1f%%)", 100*float64(reached)/float64(want))
	}
	fmt.Fprintf(&b, ", %d of %d nodes reach all theirs", done, len(comp))
	if c.routingLoad != nil {
		l := c.routingLoad()
		fmt.Fprintf(&b, "; routing in flight %d payloads, %s (peak %s), %d dropped",
			l.Payloads, memSize(float64(l.Bytes)), memSize(float64(l.PeakBytes)), l.Dropped)
	}
	return b.String()
}

// reachCounted fails when the peer-up and peer-down events of the running
// node from say that it does not reach want nodes, which it does once
// converged; it passes when they agree, or cannot tell because the node's
// routing dropped events.
func (c *Cluster) reachCounted(from string, want int) error {
	n, err := c.live(from)
	if err != nil {
		return err // killed meanwhile
	}
	c.mu.Lock()
	count := c.members[from].reach
	c.mu.Unlock()
	if k := count.Load(); k != int64(want) && n.RoutingStats().DroppedEvents == 0 {
		return fmt.Errorf("%s reaches %d of the %d nodes connected to it", from, k, want)
	}
	return nil
}

// convergedAt checks that from reaches exactly the nodes of its component
// (comp; size holds each component's size) and none of the nodes down,
// and returns its routing table; names are the running nodes, sorted.
func (c *Cluster) convergedAt(from string, names []string, comp, size map[string]int, down map[string]bool) ([]node.PeerInfo, error) {
	n, err := c.live(from)
	if err != nil {
		return nil, err // killed meanwhile
	}
	want := size[from] - 1 // from itself left out
	reached := 0
	peers := n.Peers()
	for _, p := range peers {
		if !p.Reachable || p.Name == from {
			continue
		}
		k, running := comp[p.Name]
		switch {
		case down[p.Name]:
			return nil, fmt.Errorf("%s still reaches %s, which is down", from, p.Name)
		case running && k != comp[from]:
			return nil, fmt.Errorf("%s still reaches %s across the cut", from, p.Name)
		case running:
			reached++
		}
	}
	if reached == want {
		return peers, nil
	}
	reach := map[string]bool{}
	for _, p := range peers {
		reach[p.Name] = p.Reachable
	}
	for _, to := range names {
		if comp[to] == comp[from] && to != from && !reach[to] {
			return nil, fmt.Errorf("%s does not reach %s yet (it reaches %d of the %d nodes connected to it)", from, to, reached, want)
		}
	}
	return nil, fmt.Errorf("%s reaches %d of the %d nodes connected to it", from, reached, want)
}

// pollInterval is how often conditions are re-checked while waiting.
const pollInterval = 10 * time.Millisecond

// WaitConverged waits until Converged succeeds and returns how long that
// took; on timeout the error names what was still wrong. Once Close has
// begun it fails with an error wrapping net.ErrClosed.
func (c *Cluster) WaitConverged(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := c.pollOpen(ctx, pollInterval, c.Converged)
	if err != nil {
		return time.Since(start), fmt.Errorf("not converged after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	return time.Since(start), nil
}

// convergedReportEvery is how often a wait converged with a progress
// writer says how far it has come.
const convergedReportEvery = 100 * time.Millisecond

// waitConvergedStretch is WaitConverged that also returns the routes'
// stretch, measured from the routing tables the successful check read
// (one pass over them, not two).
// With report set, every convergedReportEvery while it waits it reports
// how long it has waited and what the last check found wrong.
func (c *Cluster) waitConvergedStretch(ctx context.Context, report func(time.Duration, string)) (*Stretch, error) {
	start := time.Now()
	next := start.Add(convergedReportEvery)
	var st *Stretch
	err := c.pollOpen(ctx, pollInterval, func() error {
		var err error
		st, err = c.converged(true)
		if now := time.Now(); err != nil && report != nil && !now.Before(next) {
			report(now.Sub(start), err.Error())
			next = now.Add(convergedReportEvery)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("not converged after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	if st == nil { // no running node to compare
		st = &Stretch{MaxRatio: 1}
	}
	return st, nil
}

// poll calls check until it returns nil or ctx ends, returning the last
// error in the latter case.
func poll(ctx context.Context, check func() error) error {
	return pollEvery(ctx, pollInterval, check)
}

// pollOpen is pollEvery that also ends once Close has begun (the nodes it
// checks are closing), then with an error wrapping net.ErrClosed too. It
// does not call check once Close has begun: a check over the running
// nodes of a closing cluster (or over its gossip nodes, of which it may
// have none) can hold for none at all, which is no success.
func (c *Cluster) pollOpen(ctx context.Context, interval time.Duration, check func() error) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	closed := fmt.Errorf("cluster closed: %w", net.ErrClosed)
	err := pollEvery(pctx, interval, func() error {
		if c.ctx.Err() != nil {
			return closed
		}
		return check()
	})
	if err != nil && err != closed && ctx.Err() == nil && c.ctx.Err() != nil {
		return fmt.Errorf("cluster closed: %w: %w", net.ErrClosed, err)
	}
	return err
}

// pollEvery is poll checking every interval.
func pollEvery(ctx context.Context, interval time.Duration, check func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}

// WriteState writes, for every node in the order they were added, its
// latest events (at most events of them) and, when it runs, its links and
// routing table (node.WriteState): what a failing test prints to be
// diagnosed from its output alone.
func (c *Cluster) WriteState(w io.Writer, events int) error {
	for _, name := range c.Names() {
		evs, err := c.Events(name)
		if err != nil {
			return err
		}
		if len(evs) > events {
			evs = evs[len(evs)-events:]
		}
		var b strings.Builder
		fmt.Fprintf(&b, "events of %s (latest %d):\n", name, len(evs))
		for _, e := range evs {
			fmt.Fprintf(&b, "  %s %s %s", e.Time.Format("15:04:05.000"), e.Kind, e.Peer)
			if e.Err != "" {
				fmt.Fprintf(&b, ": %s", e.Err)
			}
			b.WriteByte('\n')
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
		n := c.Node(name)
		if n == nil {
			if _, err := fmt.Fprintf(w, "node %s is down\n", name); err != nil {
				return err
			}
			continue
		}
		if err := n.WriteState(w); err != nil {
			return err
		}
	}
	return nil
}
