package simulate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// ErrNoGossip: the node does not run gossip (it was not started by
// Discover).
var ErrNoGossip = errors.New("node runs without gossip")

// Underlay places nodes in regions: the one-way latency between two nodes
// is Inside within a region and Between[{r1, r2}] (region names sorted)
// across regions. Nodes in no region have no latency between them.
//
// With Pos, nodes also have a place on a plane (in milliseconds of
// one-way latency, relative to their region's centre): the straight-line
// distance between two placed nodes is added to that latency, so that
// inside a region Inside is a floor and nearby nodes are nearer than far
// ones, as in a real network, where latency grows with distance.
type Underlay struct {
	Region  map[string]string           // node → region
	Inside  time.Duration               // one-way latency inside a region (the floor, with Pos)
	Between map[[2]string]time.Duration // one-way latency between two regions, names sorted
	Pos     map[string][2]float64       // node → place on the plane, in ms; nil: none
}

// Latency is the one-way latency between nodes a and b.
func (u *Underlay) Latency(a, b string) time.Duration {
	if u == nil {
		return 0
	}
	ra, oka := u.Region[a]
	rb, okb := u.Region[b]
	var l time.Duration
	switch {
	case !oka || !okb:
		return 0
	case ra == rb:
		l = u.Inside
	case ra > rb:
		l = u.Between[[2]string{rb, ra}]
	default:
		l = u.Between[[2]string{ra, rb}]
	}
	pa, oka := u.Pos[a]
	pb, okb := u.Pos[b]
	if oka && okb {
		d := math.Hypot(pa[0]-pb[0], pa[1]-pb[1])
		l += (time.Duration(d * float64(time.Millisecond))).Round(time.Microsecond)
	}
	return l
}

// gossipBackend adds memberlist gossip over the simulated network to a
// backend: nodes started by Cluster.Discover get a gossip transport on it
// and join the seed; faults reach the gossip as they reach the links.
type gossipBackend struct {
	backend
	g          *gossipNet
	gossip     map[string]bool             // nodes that run gossip
	seed       string                      // the node others join
	transports map[string]*gossipTransport // node → transport of its current start
	started    []string                    // gossip nodes in the order they first started
	key        [32]byte                    // the gossip encryption key of every node
	under      *Underlay                   // set by SetUnderlay
	parted     map[pair]bool               // pairs cut by PartitionUnderlay
	window     time.Time                   // start of the current measuring window
	windowAt   GossipStats                 // gossip traffic at its start
}

func newGossipBackend(be backend, seed uint64) (*gossipBackend, error) {
	_, isQUIC := be.(*quicBackend)
	g, err := newGossipNet(seed, isQUIC)
	if err != nil {
		return nil, err
	}
	b := &gossipBackend{backend: be, g: g, gossip: map[string]bool{},
		transports: map[string]*gossipTransport{}, parted: map[pair]bool{}}
	// Gossip is encrypted, as it should be in the field, with a key of
	// the cluster's seed.
	binary.BigEndian.PutUint64(b.key[:], seed)
	copy(b.key[8:], "circuitmesh simulated gossip")
	return b, nil
}

func (b *gossipBackend) configure(name string, cfg *node.Config) error {
	if err := b.backend.configure(name, cfg); err != nil {
		return err
	}
	if !b.gossip[name] {
		return nil
	}
	if old := b.transports[name]; old != nil {
		old.Shutdown() // a start that failed, or the instance before a restart
	}
	t, err := b.g.transport(name)
	if err != nil {
		return err
	}
	b.transports[name] = t
	cfg.Discovery.BindAddr = b.g.addr(name)
	cfg.Discovery.Transport = t
	cfg.Discovery.Key = b.key[:]
	cfg.Discovery.Join = nil
	if name != b.seed {
		cfg.Discovery.Join = []string{b.g.addr(b.seed)}
	} else {
		// A restarted seed joins the first few others that started.
		for _, other := range b.started {
			if other != name && len(cfg.Discovery.Join) < 3 {
				cfg.Discovery.Join = append(cfg.Discovery.Join, b.g.addr(other))
			}
		}
	}
	if !slices.Contains(b.started, name) {
		b.started = append(b.started, name)
	}
	return nil
}

func (b *gossipBackend) setParams(x, y string, p LinkParams) error {
	if err := b.backend.setParams(x, y, p); err != nil {
		return err
	}
	b.g.setParams(x, y, p)
	return nil
}

func (b *gossipBackend) block(x, y string, blocked bool) {
	b.backend.block(x, y, blocked)
	b.g.block(x, y, blocked)
}

func (b *gossipBackend) setDown(name string, down bool) {
	b.backend.setDown(name, down)
	b.g.setDown(name, down)
}

func (b *gossipBackend) shutdown() {
	b.backend.shutdown()
	b.g.shutdown()
}

func (b *gossipBackend) release(name string) {
	b.backend.release(name)
	if t := b.transports[name]; t != nil {
		t.Shutdown()
		delete(b.transports, name)
	}
}

func (b *gossipBackend) close() {
	b.backend.close()
	b.g.close()
}

// gossipOf returns the cluster's gossip layer.
func (c *Cluster) gossipOf() *gossipBackend { return c.be.(*gossipBackend) }

// maxPos bounds a coordinate of Underlay.Pos, in ms: a distance on the
// plane then stays a duration (MaxDuration from the centre, as a
// scenario's spread= at most).
const maxPos = float64(MaxDuration / time.Millisecond)

// validate checks u before SetUnderlay applies it: at most maxNodes
// placed nodes (ErrTooManyNodes: it sets a latency for every pair),
// latencies from 0 to MaxDuration and places on the plane finite and
// within maxPos of its centre (ErrInvalidArgument).
func (u *Underlay) validate(maxNodes int) error {
	switch {
	case u == nil:
		return fmt.Errorf("no underlay: %w", ErrInvalidArgument)
	case len(u.Region) > maxNodes:
		return fmt.Errorf("%d nodes placed, more than the cluster's %d: %w", len(u.Region), maxNodes, ErrTooManyNodes)
	case u.Inside < 0 || u.Inside > MaxDuration:
		return fmt.Errorf("inside latency %v: want 0 to %v: %w", u.Inside, MaxDuration, ErrInvalidArgument)
	}
	for r, l := range u.Between {
		if l < 0 || l > MaxDuration {
			return fmt.Errorf("latency %v between %s and %s: want 0 to %v: %w", l, r[0], r[1], MaxDuration, ErrInvalidArgument)
		}
	}
	for name, p := range u.Pos {
		for _, x := range p {
			if !(math.Abs(x) <= maxPos) {
				return fmt.Errorf("place %v of %s: want coordinates from -%v to %v ms: %w", p, name, maxPos, maxPos, ErrInvalidArgument)
			}
		}
	}
	return nil
}

// SetUnderlay places nodes in regions: the latency between every two
// placed nodes becomes the underlay's (on QUIC the one-way delay of their
// packets, links and gossip alike; on mem the cost of links between them),
// for links that exist and links made later. Link and SetLink override a
// pair. The underlay is also what MeasureMesh compares routes with. An
// underlay that is nil, places more than MaxNodes nodes, or has a
// latency that is negative or longer than MaxDuration, or a place on the
// plane that is not a number or lies farther than MaxDuration (in ms)
// from its centre is refused, with
// ErrTooManyNodes or ErrInvalidArgument, before anything changes. Once
// Close has begun it fails with an error wrapping net.ErrClosed.
func (c *Cluster) SetUnderlay(u *Underlay) error {
	if err := u.validate(maxClusterNodes); err != nil {
		return fmt.Errorf("underlay: %w", err)
	}
	names := make([]string, 0, len(u.Region))
	for name := range u.Region {
		names = append(names, name)
	}
	sort.Strings(names)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.openLocked("underlay"); err != nil {
		return err
	}
	for i, a := range names {
		for _, b := range names[i+1:] {
			if err := c.be.setParams(a, b, LinkParams{Latency: u.Latency(a, b)}); err != nil {
				return fmt.Errorf("underlay %s-%s: %w", a, b, err)
			}
		}
	}
	c.gossipOf().under = u
	return nil
}

// Discover starts nodes that find each other by gossip: seed first (unless
// it is a node of the cluster already, which must run gossip), then names
// in the order given, each joining the seed. No link is made by the
// cluster: the nodes' discovery (package node, DiscoveryConfig) decides
// their links. The request is checked whole before any node starts, as
// AddNodes checks its names (ErrDuplicateNode, identity.ErrInvalidName,
// ErrTooManyNodes), and a refused one changes nothing: neither the seed
// nor any name is started, and they do not run gossip if added later.
func (c *Cluster) Discover(ctx context.Context, seed string, names ...string) error {
	ctx, end, err := c.begin(ctx, "discover")
	if err != nil {
		return err
	}
	defer end()
	c.mu.Lock()
	gb := c.gossipOf()
	switch {
	case gb.seed != "" && gb.seed != seed:
		c.mu.Unlock()
		return fmt.Errorf("discover: the seed is %s already, not %s", gb.seed, seed)
	case c.members[seed] != nil && !gb.gossip[seed]:
		c.mu.Unlock()
		return fmt.Errorf("discover: seed %s: %w", seed, ErrNoGossip)
	}
	add := names
	if c.members[seed] == nil {
		add = append([]string{seed}, names...)
	}
	ms, err := c.reserveLocked(add)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("discover: %w", err)
	}
	gb.seed = seed
	for _, name := range add {
		gb.gossip[name] = true
	}
	if gb.window.IsZero() {
		gb.window, gb.windowAt = time.Now(), gb.g.stats()
	}
	c.mu.Unlock()
	if err := c.startAll(ctx, ms); err != nil {
		return fmt.Errorf("discover: %w", err)
	}
	return nil
}

// GossipStats returns the gossip traffic of the cluster so far.
func (c *Cluster) GossipStats() GossipStats { return c.gossipOf().g.stats() }

// PartitionUnderlay stops all traffic between every node of x and every
// node of y, links and gossip, whether or not they are linked: the
// underlay splits. HealUnderlay undoes it.
func (c *Cluster) PartitionUnderlay(x, y []string) error {
	if err := c.known(append(slices.Clone(x), y...)...); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	gb := c.gossipOf()
	for _, a := range x {
		for _, b := range y {
			if a != b {
				gb.parted[mkpair(a, b)] = true
				c.be.block(a, b, true)
			}
		}
	}
	return nil
}

// HealUnderlay undoes every PartitionUnderlay (links that are cut stay
// cut). Once Close has begun it fails with an error wrapping
// net.ErrClosed.
func (c *Cluster) HealUnderlay() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.openLocked("heal underlay"); err != nil {
		return err
	}
	gb := c.gossipOf()
	for p := range gb.parted {
		if e := c.edges[p]; e == nil || !e.cut {
			c.be.block(p.a, p.b, false)
		}
		delete(gb.parted, p)
	}
	return nil
}

// sides labels every running node with its part of the underlay: nodes
// that PartitionUnderlay did not separate. n.mu is not held.
func (c *Cluster) sides() (names []string, side map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	parted := c.gossipOf().parted
	for _, name := range c.order {
		if c.members[name].n != nil {
			names = append(names, name)
		}
	}
	side = make(map[string]int, len(names))
	if len(parted) == 0 { // one side: spare the search over every pair
		for _, name := range names {
			side[name] = 0
		}
		return names, side
	}
	for i, name := range names {
		if _, ok := side[name]; ok {
			continue
		}
		side[name] = i
		for queue := []string{name}; len(queue) > 0; queue = queue[1:] {
			for _, next := range names {
				if _, ok := side[next]; !ok && !parted[mkpair(queue[0], next)] {
					side[next] = i
					queue = append(queue, next)
				}
			}
		}
	}
	return names, side
}

// Members lists the gossip members a running node knows, itself included,
// sorted.
func (c *Cluster) Members(name string) ([]string, error) {
	n, err := c.live(name)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", name, err)
	}
	c.mu.Lock()
	g := c.gossipOf().gossip[name]
	c.mu.Unlock()
	if !g {
		return nil, fmt.Errorf("members of %s: %w", name, ErrNoGossip)
	}
	var out []string
	for _, m := range n.Members() {
		out = append(out, m.Name)
	}
	return out, nil
}

// MembersKnown checks that every running gossip node knows every running
// gossip node on its side of the underlay. The error names the first
// that does not.
func (c *Cluster) MembersKnown() error {
	_, err := c.membersKnown(false)
	return err
}

// MembersCount is how far gossip has come: of the running gossip nodes,
// how many know every gossip node on their side, and how many of the
// (node, member) pairs that should be known are.
type MembersCount struct {
	Nodes, Complete int
	Known, Want     int
}

func (m MembersCount) String() string {
	return fmt.Sprintf("%d of %d nodes know every member; %d of %d members known (%.2f %%)",
		m.Complete, m.Nodes, m.Known, m.Want, 100*float64(m.Known)/float64(max(m.Want, 1)))
}

// membersKnown is MembersKnown; with all it goes on past the first node
// that misses a member and counts them all.
func (c *Cluster) membersKnown(all bool) (MembersCount, error) {
	names, side := c.sides()
	c.mu.Lock()
	gossip := maps.Clone(c.gossipOf().gossip)
	c.mu.Unlock()
	// How many gossip nodes each side has: a node knows them all when it
	// knows that many of its side (Members has no duplicates), which
	// takes one pass over its members instead of a search per node.
	want := map[int]int{}
	for _, name := range names {
		if gossip[name] {
			want[side[name]]++
		}
	}
	var count MembersCount
	var first error
	for _, from := range names {
		if !gossip[from] {
			continue
		}
		ms, err := c.Members(from)
		if err != nil {
			return count, err
		}
		known := 0
		for _, m := range ms {
			if s, ok := side[m]; ok && gossip[m] && s == side[from] {
				known++
			}
		}
		count.Nodes++
		count.Known += known
		count.Want += want[side[from]]
		if known == want[side[from]] {
			count.Complete++
			continue
		}
		if first == nil {
			for _, to := range names {
				if gossip[to] && side[to] == side[from] && !slices.Contains(ms, to) {
					first = fmt.Errorf("%s does not know %s yet (it knows %d members)", from, to, len(ms))
					break
				}
			}
		}
		if !all {
			return count, first
		}
	}
	return count, first
}

// AllReachable checks that every running node has a route to every
// running node on its side of the underlay. The error names the first
// pair that is not and how many pairs are.
func (c *Cluster) AllReachable() error {
	names, side := c.sides()
	var first string
	pairs, ok := 0, 0
	for _, from := range names {
		n, err := c.live(from)
		if err != nil {
			return err
		}
		reach := map[string]bool{}
		for _, p := range n.Peers() {
			reach[p.Name] = p.Reachable
		}
		for _, to := range names {
			if to == from || side[to] != side[from] {
				continue
			}
			pairs++
			if reach[to] {
				ok++
			} else if first == "" {
				first = fmt.Sprintf("%s does not reach %s", from, to)
			}
		}
	}
	if first != "" {
		return fmt.Errorf("%s (%d of %d pairs reachable)", first, ok, pairs)
	}
	return nil
}

// WaitMembers waits until MembersKnown holds and returns how long it took.
// Once Close has begun it fails with an error wrapping net.ErrClosed.
func (c *Cluster) WaitMembers(ctx context.Context) (time.Duration, error) {
	return c.waitMembers(ctx, 0, nil)
}

// waitMembers is WaitMembers; every that long (when report is not nil)
// report gets the time waited so far and how far gossip has come.
func (c *Cluster) waitMembers(ctx context.Context, every time.Duration, report func(time.Duration, string)) (time.Duration, error) {
	start := time.Now()
	check := reporting(start, every, report, c.MembersKnown, func() (string, error) {
		count, err := c.membersKnown(true)
		return count.String(), err
	})
	if err := c.pollOpen(ctx, c.widePoll(), check); err != nil {
		return time.Since(start), fmt.Errorf("gossip incomplete after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	return time.Since(start), nil
}

// reporting returns check, or with report (not nil) a check that, every
// that long after start while it fails, runs detail instead and gives
// report the time waited so far and detail's account of how far it has
// come.
func reporting(start time.Time, every time.Duration, report func(time.Duration, string), check func() error, detail func() (string, error)) func() error {
	if report == nil {
		return check
	}
	next := start.Add(every)
	return func() error {
		now := time.Now()
		if now.Before(next) {
			return check()
		}
		next = now.Add(every)
		how, err := detail()
		if err != nil {
			report(now.Sub(start), how)
		}
		return err
	}
}

// WaitReachable waits until AllReachable holds and returns how long it
// took. Once Close has begun it fails with an error wrapping
// net.ErrClosed.
func (c *Cluster) WaitReachable(ctx context.Context) (time.Duration, error) {
	return c.waitReachable(ctx, 0, nil)
}

// waitReachable is WaitReachable; every that long (when report is not
// nil) report gets the time waited so far and the pairs reachable.
func (c *Cluster) waitReachable(ctx context.Context, every time.Duration, report func(time.Duration, string)) (time.Duration, error) {
	start := time.Now()
	check := reporting(start, every, report, c.AllReachable, func() (string, error) {
		err := c.AllReachable()
		if err != nil {
			return err.Error(), err
		}
		return "", nil
	})
	if err := c.pollOpen(ctx, c.widePoll(), check); err != nil {
		return time.Since(start), fmt.Errorf("not all reachable after %v: %w", time.Since(start).Round(time.Millisecond), err)
	}
	return time.Since(start), nil
}

// widePoll is how often a check over every pair of running nodes is
// repeated while waiting: pollInterval up to 100 nodes, then growing
// with the square of the nodes, as the check's cost does (90 ms at 300
// nodes, 1 s at 1000), so that waiting costs no more wall time per
// virtual second at scale than at 100 nodes. The time a wait reports is
// that much coarser.
func (c *Cluster) widePoll() time.Duration {
	c.mu.Lock()
	n := 0
	for _, m := range c.members {
		if m.n != nil {
			n++
		}
	}
	c.mu.Unlock()
	if n <= 100 {
		return pollInterval
	}
	return min(time.Duration(float64(pollInterval)*float64(n*n)/1e4), time.Second)
}

// gossipLinger is how long memberlist's last probe of a closed node can
// still run: Shutdown does not wait for a probe in progress, which waits
// for its ack for up to the probe interval scaled by memberlist's
// awareness (at most 8 × 1 s) plus the probe timeout.
const gossipLinger = 10 * time.Second

// lingerGossip lets the probes of closed gossip nodes end, in virtual time
// only: a testing/synctest bubble must not end with goroutines left, and
// there the wait costs no wall time. In real time they end by themselves
// after Close.
func (c *Cluster) lingerGossip() {
	c.mu.Lock()
	used := len(c.gossipOf().gossip) > 0
	c.mu.Unlock()
	if used && virtualClock() {
		time.Sleep(gossipLinger)
	}
}

// virtualClock reports whether time is a synctest bubble's fake clock,
// which starts at midnight UTC on 2000-01-01 (runs last minutes, not
// years).
func virtualClock() bool {
	return time.Now().Before(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
}
