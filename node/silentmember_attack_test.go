package node

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// mutedLink is a link over which this node sends no routing message.
type mutedLink struct{ links.Link }

func (l *mutedLink) SendRouting([]byte) error { return nil }

// mutedHandler passes links to the node muted, the same wrapper for a
// link in every event: the node is a gossip member with a valid
// certificate that links like any other but never speaks routing.
type mutedHandler struct {
	h  links.Handler
	mu sync.Mutex
	m  map[links.Link]*mutedLink
}

func (h *mutedHandler) wrap(l links.Link) links.Link {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.m[l]
	if w == nil {
		w = &mutedLink{Link: l}
		h.m[l] = w
	}
	return w
}
func (h *mutedHandler) LinkUp(l links.Link)                       { h.h.LinkUp(h.wrap(l)) }
func (h *mutedHandler) Routing(l links.Link, p []byte)            { h.h.Routing(h.wrap(l), p) }
func (h *mutedHandler) CostChanged(l links.Link, q links.Quality) { h.h.CostChanged(h.wrap(l), q) }
func (h *mutedHandler) LinkDown(l links.Link, err error)          { h.h.LinkDown(h.wrap(l), err) }

// mutedTransport makes cfg's node one that never sends routing messages.
func mutedTransport(cfg *Config) {
	id := cfg.Identity
	cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
		return links.NewQUICTransport(links.QUICConfig{Identity: id, Role: role, ListenAddr: "127.0.0.1:0",
			Handler: &mutedHandler{h: h, m: map[links.Link]*mutedLink{}}})
	}
}

// honestDown is a LinkDown event of an honest node for a link to another.
type honestDown struct {
	node, peer string
	err        error
}

// linkDowns records the LinkDown events of the honest nodes among
// themselves from now on.
func linkDowns(t *testing.T, c *cluster, honest []string) func() []honestDown {
	var mu sync.Mutex
	var downs []honestDown
	is := map[string]bool{}
	for _, h := range honest {
		is[h] = true
	}
	for _, h := range honest {
		stop, err := c.nodes[h].SubscribeFunc(func(ev Event) {
			if ev.Kind == LinkDown && is[ev.Peer] {
				mu.Lock()
				downs = append(downs, honestDown{node: h, peer: ev.Peer, err: ev.Err})
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
	}
	return func() []honestDown {
		mu.Lock()
		defer mu.Unlock()
		return append([]honestDown(nil), downs...)
	}
}

// TestAttackSilentMemberTakesSlotsEverywhere: m, a gossip member with a
// valid certificate that links like any node but never sends a routing
// message, joins a settled mesh of six honest nodes (at most 3 links,
// target 2). No route to m spreads without its own routing messages, so
// every node sees a member gossip lists and routing cannot reach, and
// repairs to it. Before, below its maximum each node dialled m and kept
// the link, and at its maximum gave up an honest link in its own policy
// to make room for m (6 of 6 honest nodes linked to m, 4 of those links
// dialled by them, 3 to 4 honest links closed in 30 s). Now a link to m
// that carried no routing for the grace (10 s) is closed and m barred
// from this node's dials, admission and room; a member never reached
// gets no room in a node's own policy unless another such member is lost
// too. What remains is the admission of m's own dials: a node at its
// maximum admits a member lost for the grace in place of a redundant
// idle link (a new member joining a full mesh looks the same), at most
// once per node in roomBackoff, and not while m is barred there.
func TestAttackSilentMemberTakesSlotsEverywhere(t *testing.T) {
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 3, TargetLinks: 2,
			Interval: 500 * time.Millisecond, JoinInterval: 2 * time.Second}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
		if cfg.Name == "m" {
			// m dials only one node itself.
			cfg.Discovery.TargetLinks, cfg.Discovery.MaxLinks = 1, 14
			mutedTransport(cfg)
		}
	}
	var honest []string
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("h%d", i)
		n := c.add(name)
		if seed == "" {
			seed = n.Status().GossipAddr
		}
		honest = append(honest, name)
	}
	waitMesh(t, c, honest, 3, patience)
	downs := linkDowns(t, c, honest)
	m := c.add("m")
	// The links honest nodes dial to m for repair close a grace (10 s)
	// after they came up, a lost grace (3 s) after m joined.
	watch := 30 * time.Second
	if testing.Short() {
		watch = 20 * time.Second
	}
	// Sample the links honest nodes dialled to m: each distinct one, and
	// the oldest age any reached.
	type dialled struct {
		node  string
		since time.Time
	}
	seen := map[dialled]bool{}
	var oldest time.Duration
	var oldestAt string
	for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, h := range honest {
			for _, l := range c.nodes[h].Links() {
				if l.Peer == "m" && l.Outbound {
					seen[dialled{h, l.Since}] = true
					if age := time.Since(l.Since); age > oldest {
						oldest, oldestAt = age, h
					}
				}
			}
		}
	}
	dials := map[string]int{}
	for d := range seen {
		dials[d.node]++
	}
	var linked []string
	for _, h := range honest {
		if c.nodes[h].link("m") != nil {
			linked = append(linked, h)
		}
	}
	reach := 0
	for _, h := range honest {
		if p, ok := c.nodes[h].Peer("m"); ok && p.Reachable {
			reach++
		}
	}
	var mOut int
	for _, l := range m.Links() {
		if l.Outbound {
			mOut++
		}
	}
	// Each closed link shows at both ends; the end that gave it up for
	// m's own incoming link (admission) sees errEvicted.
	var which, other, replaced []string
	admitted := map[string]int{}
	for _, d := range downs() {
		which = append(which, d.node+"-"+d.peer)
		switch {
		case errors.Is(d.err, errEvicted):
			admitted[d.node]++
		case d.err != nil && strings.Contains(d.err.Error(), "room for a link from a member routing could not reach"):
			// The other end of such a link.
		case d.err != nil && strings.Contains(d.err.Error(), "discovery: replaced by "):
			// The policy rearranging its links after such a link went
			// (a long link dialled again in place of a local one):
			// counted, not for the member itself.
			replaced = append(replaced, d.node+"-"+d.peer)
		default:
			other = append(other, fmt.Sprintf("%s-%s (%v)", d.node, d.peer, d.err))
		}
	}
	t.Logf("%v after m joined: %d of %d honest nodes linked to m (%s), m dialled %d of its %d links, %d honest nodes reach m; links honest nodes dialled to m: %v, the oldest %v (%s); honest links closed: %d %v, given up to admit m's own dials: %v, replaced after: %v",
		watch, len(linked), len(honest), strings.Join(linked, " "), mOut, len(m.Links()), reach, dials, oldest.Round(time.Millisecond), oldestAt, len(which), which, admitted, replaced)
	// The grace is 10 s on a node whose links and timers are not slow
	// (muteGraceLocked); a step follows within the policy interval.
	if oldest > 15*time.Second {
		t.Errorf("a link %s dialled to a member that sends no routing message lived %v", oldestAt, oldest.Round(time.Millisecond))
	}
	for h, k := range dials {
		if k > 1 {
			t.Errorf("%s dialled %d links to a member whose link carried no routing, where one barred it", h, k)
		}
	}
	if len(other) > 0 {
		t.Errorf("honest nodes closed %d links among themselves for a member that routes nothing, other than to admit its own dials: %v", len(other), other)
	}
	for node, k := range admitted {
		if k > 1 {
			t.Errorf("%s gave up %d honest links to admit m's own dials; at most one in roomBackoff", node, k)
		}
	}
}
