package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/degree"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// Nodes that join at once through one seed never hold more links than
// MaxLinks, not even for a moment: a link beyond the maximum is refused
// when it comes up and a node starts no more dials than it has free slots.
// A sampler reads every node's links every few milliseconds during the
// joins; the mesh still ends with every pair reachable.
func TestDegreeNeverExceedsMaxLinksWhileNodesJoin(t *testing.T) {
	n := 10
	if !testing.Short() {
		n = 20
	}
	const maxLinks = 3
	c := newCluster(t, true)
	var seed string
	c.tweak = gossipTweak(&seed, maxLinks, 1)

	var (
		mu    sync.Mutex
		nodes []*Node
	)
	sampler := sampleLinks(func() []*Node {
		mu.Lock()
		defer mu.Unlock()
		return append([]*Node(nil), nodes...)
	}, maxLinks)
	defer sampler.Stop()

	names := meshNames(n)
	joinThroughSeed(c, &seed, names, func(nd *Node) {
		mu.Lock()
		nodes = append(nodes, nd)
		mu.Unlock()
	})
	took, st := waitMesh(t, c, names, maxLinks, 120*time.Second)
	worst, overshot := sampler.Stop()
	if len(overshot) > 0 {
		t.Fatalf("a node held more than MaxLinks=%d links (most %d):\n%s", maxLinks, worst, strings.Join(overshot, "\n"))
	}
	refused := metricValue(t, c.nodes[names[0]], "circuitmesh_discovery_links_dropped_total", "reason", "max")
	t.Logf("%d QUIC nodes joined through one seed: every pair reachable %v after the last start; most links on a node at any sample %d (bound %d); diameter %d; seed refused or dropped %v links at its maximum",
		n, took.Round(time.Millisecond), worst, maxLinks, st.diameter, refused)
}

// A member that joins a full node is refused when its link comes up, says
// so at WARN with the reason, and is not linked to the full node (it backs
// off from it and links elsewhere). The back-off is in force when the
// warning is written: a reader of the log who checks finds it.
func TestJoinerRefusedByFullNodeWarnsAndBacksOff(t *testing.T) {
	c, hub := fullHub(t, nil)
	var jlog syncBuf
	seed := hub.Status().GossipAddr
	addr := hub.disco.linkAddr()
	var (
		jd     atomic.Pointer[discovery]
		seenMu sync.Mutex
		seen   []time.Duration // j's back-off from hub left as each warning about hub was written
	)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 1, TargetLinks: 1, Interval: time.Second, Join: []string{seed}}
		cfg.Logger = slog.New(onWarn{slog.NewTextHandler(&jlog, &slog.HandlerOptions{Level: slog.LevelWarn}), func(r slog.Record) {
			if !recordSays(r, "member", "hub") {
				return
			}
			d := jd.Load()
			for wait := time.Now().Add(60 * time.Second); d == nil && time.Now().Before(wait); d = jd.Load() {
				time.Sleep(time.Millisecond) // j's Start has not returned yet
			}
			left := time.Duration(-1)
			if d != nil {
				d.mu.Lock()
				if b := d.backoff[addr]; b != nil {
					left = time.Until(b.until)
				}
				d.mu.Unlock()
			}
			seenMu.Lock()
			seen = append(seen, left)
			seenMu.Unlock()
		}})
	}
	j := c.add("j")
	jd.Store(j.disco)
	c.tweak = nil
	waitFor(t, "j to be refused by hub", 60*time.Second, func() bool {
		return strings.Contains(jlog.String(), "member=hub")
	})
	logged := jlog.String()
	if !strings.Contains(logged, "at its link maximum of 1 links") || !strings.Contains(logged, "level=WARN") {
		t.Fatalf("j's log does not say hub is at its maximum:\n%s", logged)
	}
	if k := len(hub.Links()); k > 1 {
		t.Fatalf("hub holds %d links, maximum 1", k)
	}
	// j backs off from hub (the policy leaves it alone meanwhile), from
	// the moment it says so.
	seenMu.Lock()
	atWarn := seen[0]
	seenMu.Unlock()
	if atWarn < fullBan/2 {
		t.Fatalf("j's back-off from hub at %s when it warned: %v left (-1: none), want about %v", addr, atWarn, fullBan)
	}
	j.disco.mu.Lock()
	b := j.disco.backoff[addr]
	j.disco.mu.Unlock()
	if b == nil || time.Until(b.until) < fullBan/2 {
		t.Fatalf("j's back-off from hub at %s: %+v, want about %v", addr, b, fullBan)
	}
	for range 3 {
		j.disco.step(time.Now())
	}
	j.disco.mu.Lock()
	dialing := j.disco.dialing["hub"]
	j.disco.mu.Unlock()
	if dialing {
		t.Fatal("j dials hub again while backing off")
	}
}

// joinThroughSeed starts the nodes names one after the other, the first
// as the seed (*seed, its gossip address) whose address c's tweak has the
// others join through, and calls each (when not nil) with every node once
// it started.
func joinThroughSeed(c *cluster, seed *string, names []string, each func(*Node)) {
	for _, name := range names {
		nd := c.add(name)
		if *seed == "" {
			*seed = nd.Status().GossipAddr
		}
		if each != nil {
			each(nd)
		}
	}
}

// meshNames are the names circuitmesh-0 … circuitmesh-(n−1).
func meshNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("circuitmesh-%d", i)
	}
	return names
}

// onWarn is a log handler that calls f with each record it handles at
// WARN or above, before writing it.
type onWarn struct {
	slog.Handler
	f func(slog.Record)
}

func (h onWarn) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.f(r)
	}
	return h.Handler.Handle(ctx, r)
}

func (h onWarn) WithAttrs(as []slog.Attr) slog.Handler {
	return onWarn{h.Handler.WithAttrs(as), h.f}
}

func (h onWarn) WithGroup(g string) slog.Handler { return onWarn{h.Handler.WithGroup(g), h.f} }

// recordSays reports whether r has the attribute key=value.
func recordSays(r slog.Record, key, value string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key && a.Value.String() == value
		return !found
	})
	return found
}

// A full node may refuse a link before the dialler's transport has it up
// (the dialler is slow to take the link after the handshake): the dial
// itself then fails with the refusal. The joiner still says at WARN that
// the member is at its maximum and backs off fullBan from it, as when the
// refusal ends a link that was up; it does not take the refusal for a
// silent address, which two failed dials ban for an hour.
func TestJoinerRefusedBeforeItsLinkIsUpWarnsAndBacksOff(t *testing.T) {
	c, hub := fullHub(t, nil)
	var jlog syncBuf
	seed := hub.Status().GossipAddr
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 1, TargetLinks: 1, Interval: time.Second, Join: []string{seed}}
		cfg.Logger = slog.New(slog.NewTextHandler(&jlog, &slog.HandlerOptions{Level: slog.LevelWarn}))
		id, log := cfg.Identity, cfg.Logger
		cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
			tr, err := links.NewQUICTransport(links.QUICConfig{Identity: id, Role: role, Handler: h, Logger: log})
			if err != nil {
				return nil, err
			}
			return refusedInDial{Transport: tr, peer: "hub"}, nil
		}
	}
	j := c.add("j")
	c.tweak = nil
	addr := hub.disco.linkAddr()
	backoff := func() (fails int, until time.Time, dialing bool) {
		j.disco.mu.Lock()
		defer j.disco.mu.Unlock()
		if b := j.disco.backoff[addr]; b != nil {
			fails, until = b.fails, b.until
		}
		return fails, until, j.disco.dialing["hub"]
	}
	// j's policy dials hub (a second time a second later if the first
	// refusal were taken for a failed dial).
	waitFor(t, "j to be refused by hub", 60*time.Second, func() bool {
		fails, _, _ := backoff()
		return strings.Contains(jlog.String(), "member=hub") || fails >= 2
	})
	logged := jlog.String()
	if !strings.Contains(logged, "member=hub") || !strings.Contains(logged, "at its link maximum of 1 links") || !strings.Contains(logged, "level=WARN") {
		t.Fatalf("hub refused j's dials at its maximum, but j's log does not say so:\n%s", logged)
	}
	// A second refused dial (the policy would make it after fullBan).
	var m Member
	for _, mm := range j.Members() {
		if mm.Name == "hub" {
			m = mm
		}
	}
	j.disco.dial(m, topology.WhyTarget)
	waitFor(t, "j's second dial to hub to end", 60*time.Second, func() bool {
		fails, _, dialing := backoff()
		return fails >= 2 && !dialing
	})
	_, until, _ := backoff()
	j.disco.mu.Lock()
	banned := j.disco.memberBannedLocked("hub", addr, until)
	j.disco.mu.Unlock()
	if left := time.Until(until); left < fullBan/2 || left > 2*fullBan || banned {
		t.Fatalf("after two refusals at hub's maximum j waits %v before dialling hub again (banned after that: %v), want about %v", left.Round(time.Second), banned, fullBan)
	}
}

// refusedInDial is a transport whose dials to peer fail with the reason
// the peer closed the link with, as a dial does when the peer closes the
// link before the transport has it up.
type refusedInDial struct {
	links.Transport
	peer string
}

func (t refusedInDial) Dial(ctx context.Context, addr string) (links.Link, error) {
	l, err := t.Transport.Dial(ctx, addr)
	if err != nil || l.Peer() != t.peer {
		return l, err
	}
	select {
	case <-l.Done():
	case <-ctx.Done():
		return nil, fmt.Errorf("dial %s: %w", addr, ctx.Err())
	}
	return nil, fmt.Errorf("dial %s: link closed before it was up: %w", addr, l.Err())
}

// sampleLinks reads the links of every node nodes returns every 2 ms
// until stopped and records what it saw above bound.
func sampleLinks(nodes func() []*Node, bound int) *degree.Sampler {
	return degree.Sample(2*time.Millisecond, bound, func() map[string][]string {
		out := map[string][]string{}
		for _, nd := range nodes() {
			var peers []string
			for _, l := range nd.Links() {
				peers = append(peers, fmt.Sprintf("%s(out=%v)", l.Peer, l.Outbound))
			}
			out[nd.cfg.Name] = peers
		}
		return out
	})
}

// Two groups of four nodes gossip each among itself and link fully inside
// (TargetLinks = MaxLinks = 3: every node is full). When their gossip
// merges, each node sees four members routing cannot reach: a full node
// gives up a redundant idle link to dial one of them, and a full node
// admits such a repair link in place of one of its own, so the groups
// join while no node ever holds more than 3 links.
func TestFullGroupsJoinWhenGossipMerges(t *testing.T) {
	const maxLinks = 3
	c := newCluster(t, false)
	groups := [2][]string{{"a1", "a2", "a3", "a4"}, {"b1", "b2", "b3", "b4"}}
	var all []*Node
	var names []string
	seeds := [2]string{}
	for g, group := range groups {
		c.tweak = gossipTweak(&seeds[g], maxLinks, maxLinks)
		for _, name := range group {
			nd := c.add(name)
			if seeds[g] == "" {
				seeds[g] = nd.Status().GossipAddr
			}
			all = append(all, nd)
			names = append(names, name)
		}
	}
	c.tweak = nil
	waitFor(t, "each group fully linked inside", 60*time.Second, func() bool {
		for _, nd := range all {
			if len(nd.Links()) != maxLinks || len(nd.Members()) != 4 || nd.Status().Reachable != 3 {
				return false
			}
		}
		return true
	})
	sampler := sampleLinks(func() []*Node { return all }, maxLinks)
	defer sampler.Stop()
	start := time.Now()
	// A join is retried, as discovery retries its seeds every
	// JoinInterval: on a loaded machine one push-pull can fail (it once
	// ended in EOF under -race at a load average of about 25).
	var joinErr error
	waitFor(t, "a1 to join b's gossip", 60*time.Second, func() bool {
		_, joinErr = c.nodes["a1"].disco.ml.Join([]string{seeds[1]})
		if joinErr != nil {
			t.Logf("join %s: %v (retrying)", seeds[1], joinErr)
			time.Sleep(500 * time.Millisecond)
		}
		return joinErr == nil
	})
	took, st := waitMesh(t, c, names, maxLinks, 90*time.Second)
	if worst, over := sampler.Stop(); len(over) > 0 {
		t.Fatalf("a node held more than MaxLinks=%d links (most %d):\n%s", maxLinks, worst, strings.Join(over, "\n"))
	}
	var room float64
	for _, nd := range all {
		room += metricValue(t, nd, "circuitmesh_discovery_links_dropped_total", "reason", "room")
	}
	if room == 0 {
		t.Fatal("the groups joined without a link closed to make room: the test did not start from full nodes")
	}
	t.Logf("full groups joined %v after their gossip merged (%v of it waiting for the mesh); %v links closed for room; diameter %d",
		time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond), room, st.diameter)
}

// A link this node's discovery dialled gives its slot back when it ends,
// and the link's LinkUp may be handled only after that (the peer refused
// it at its maximum at once). Such a late LinkUp must not put the dead
// link in the table on top of the links admitted meanwhile: a full node
// would hold MaxLinks+1 links until the LinkDown.
func TestLinkEndedBeforeItsLinkUpTakesNoSlot(t *testing.T) {
	_, hub := fullHub(t, nil) // MaxLinks 1, held by the link to g
	late := &endedLink{Link: hub.link("g"), peer: "x", done: make(chan struct{})}
	close(late.done)
	(*linkHandler)(hub).LinkUp(late)
	if l := hub.link("x"); l != nil {
		t.Fatalf("hub admitted a link that had ended, on top of its MaxLinks=1: links %v", hub.Links())
	}
	if hub.link("g") == nil {
		t.Fatal("hub lost its link to g")
	}
}

// A node's dial and its peer's dial can cross: the transport adopts the
// two links on two goroutines, and the losing link may be replaced, and
// so ended, before its own LinkUp is delivered, after the winner's. That
// late LinkUp must not push the live link out of the node's table: the
// loser's LinkDown would then remove the peer, and the node would hold no
// link to a peer whose link is up (seen with hub's own dial to g still
// running when it lost).
func TestLateLinkUpOfReplacedLinkKeepsTheLiveLink(t *testing.T) {
	c, hub := fullHub(t, nil)
	// (Crossing dials of the setup settle first.)
	waitFor(t, "hub and g to route to each other", 60*time.Second, func() bool {
		p, ok := hub.Peer("g")
		q, ok2 := c.nodes["g"].Peer("hub")
		return ok && ok2 && p.Reachable && q.Reachable
	})
	live := hub.link("g")
	hub.disco.mu.Lock()
	hub.disco.dialing["g"] = true // hub's own dial to g, whose link lost
	hub.disco.mu.Unlock()
	defer func() {
		hub.disco.mu.Lock()
		delete(hub.disco.dialing, "g")
		hub.disco.mu.Unlock()
	}()
	late := &endedLink{Link: live, peer: "g", done: make(chan struct{})}
	close(late.done)
	(*linkHandler)(hub).LinkUp(late)
	(*linkHandler)(hub).LinkDown(late, errors.New("link to g: link lost: duplicate link"))
	if l := hub.link("g"); l == nil || l == links.Link(late) {
		t.Fatalf("hub's link to g after the late LinkUp and LinkDown of a replaced link: %v, want the live link %v", l, live)
	}
	if p, ok := hub.Peer("g"); !ok || !p.Reachable {
		t.Fatalf("hub's routing lost g: %+v", p)
	}
}

// endedLink is an outbound link to peer that ended before its LinkUp (no
// dial of this node's discovery holds a slot for it any more).
type endedLink struct {
	links.Link
	peer string
	done chan struct{}
}

func (l *endedLink) Peer() string          { return l.peer }
func (l *endedLink) Outbound() bool        { return true }
func (l *endedLink) Done() <-chan struct{} { return l.done }
func (l *endedLink) Err() error            { return links.ErrClosed }
func (l *endedLink) Close(string) error    { return nil }
