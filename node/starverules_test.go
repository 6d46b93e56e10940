package node

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// fullTriangle starts three gossip nodes of at most 2 links on the
// in-memory network and waits for their triangle: each node is at its
// maximum, and each of its links has an alternate (the third node), so
// each may be given up for room. It returns the cluster and hub, one of
// the three.
func fullTriangle(t *testing.T) (*cluster, *Node) {
	t.Helper()
	c := newCluster(t, false)
	var seed string
	c.tweak = gossipTweak(&seed, 2, 2)
	names := []string{"hub", "a", "b"}
	joinThroughSeed(c, &seed, names, nil)
	c.tweak = nil
	waitFor(t, "the triangle hub-a-b", 60*time.Second, func() bool {
		for _, name := range names {
			if len(c.nodes[name].Links()) != 2 || c.nodes[name].Status().Reachable != 2 {
				return false
			}
			for _, k := range c.nodes[name].disco.alternates() {
				if k == 0 {
					return false
				}
			}
		}
		return true
	})
	return c, c.nodes["hub"]
}

// addUnreachableMember lists x, a router no route reaches, among hub's
// gossip members, unreachable since lost (its address answers no dial).
func addUnreachableMember(hub *Node, x string, lost time.Time, vouched bool) {
	d := hub.disco
	d.mu.Lock()
	defer d.mu.Unlock()
	d.members[x] = gossipMember{Member: Member{Name: x, LinkAddr: "127.0.0.1:1"}, ok: true}
	d.lost[x] = lost
	if vouched {
		d.reached[x] = true
	}
}

// setLost sets when hub's policy first found x unreachable.
func setLost(hub *Node, x string, since time.Time) {
	hub.disco.mu.Lock()
	hub.disco.lost[x] = since
	hub.disco.mu.Unlock()
}

// incomingAs is a live link of the node presented as an incoming link
// from peer.
type incomingAs struct {
	links.Link
	peer string
}

func (l incomingAs) Peer() string   { return l.peer }
func (l incomingAs) Outbound() bool { return false }

// A node at its maximum admits a link from a member routing does not
// reach in place of one of its own only once routing has not reached the
// member for the lost grace, as the policy makes room only for a member
// lost that long: a member routing does not reach just now (its route
// crossed a link that changed, and routing has not brought the route
// around it yet, which on a node starved of CPU takes seconds) gets no
// room. Before, admission made room for such a member at once: a starved
// mesh closed links for members routing was about to reach, which cut
// off others in turn.
func TestAdmissionMakesNoRoomForMemberJustUnreachable(t *testing.T) {
	_, hub := fullTriangle(t)
	// x is not vouched for, and hub's policy just gave up a link for such
	// a member: its own steps make no room for x meanwhile.
	addUnreachableMember(hub, "x", time.Now(), false)
	hub.disco.mu.Lock()
	hub.disco.unvouchedAt = time.Now()
	hub.disco.mu.Unlock()
	admit := func() (bool, links.Link, string) {
		t.Helper()
		ok, evicted, reason, _ := hub.disco.admit(incomingAs{Link: hub.link("a"), peer: "x"}, func(links.Link) bool { return true })
		return ok, evicted, reason
	}
	setLost(hub, "x", time.Now())
	if ok, evicted, reason := admit(); ok || evicted != nil || !strings.HasPrefix(reason, topology.AtMaximum) {
		t.Fatalf("a link from x, a member routing stopped reaching a moment ago, at hub's maximum: admitted %v, in place of %v (refused: %q); want refused at the maximum",
			ok, evicted, reason)
	}
	setLost(hub, "x", time.Now().Add(-time.Minute))
	if ok, evicted, reason := admit(); !ok || evicted == nil {
		t.Fatalf("a link from x, a member routing has not reached for a minute, at hub's maximum: admitted %v, in place of %v (refused: %q); want admitted in place of a redundant link",
			ok, evicted, reason)
	}
}

// A node at its maximum whose links it dialled itself gives one of them
// up for a member routing has not reached for the lost grace, as for a
// link it accepted: which end dialled a redundant link does not make it
// less redundant. Before, a dial's link held its slot as a dial in
// progress for its whole life, and topology.Room passes over peers being
// dialled, so such a node refused the repair link at its maximum.
func TestAdmissionMakesRoomInPlaceOfOwnDial(t *testing.T) {
	_, hub := fullTriangle(t)
	d := hub.disco
	d.mu.Lock()
	for _, peer := range []string{"a", "b"} {
		d.held[peer] = hub.link(peer) // as if hub had dialled both
	}
	d.mu.Unlock()
	addUnreachableMember(hub, "x", time.Now().Add(-time.Minute), false)
	ok, evicted, reason, _ := d.admit(incomingAs{Link: hub.link("a"), peer: "x"}, func(links.Link) bool { return true })
	if !ok || evicted == nil {
		t.Fatalf("a link from x, a member routing has not reached for a minute, at the maximum of hub, which dialled both its links: admitted %v, in place of %v (refused: %q); want admitted in place of one of them",
			ok, evicted, reason)
	}
}

// slowQuality is a link whose RTT reads rtt.
type slowQuality struct {
	links.Link
	rtt time.Duration
}

func (l slowQuality) Quality() links.Quality {
	q := l.Link.Quality()
	q.RTT = l.rtt
	return q
}

// A node whose links' RTTs are seconds (a node starved of CPU: its
// loopback links measured 2 to 4.5 s) gives routing as many seconds to
// bring a route around a changed link before it gives up one of its links
// for a member routing does not reach: at its maximum with links of 2 s,
// a member unreachable for 5 s gets no room (the grace is 10 of those
// RTTs, 20 s); one unreachable for 30 s does. Before, the grace was 3 s
// whatever the node measured.
func TestRoomGraceScalesWithLinkRTT(t *testing.T) {
	_, hub := fullTriangle(t)
	hub.mu.Lock()
	for peer, l := range hub.links {
		hub.links[peer] = slowQuality{Link: l, rtt: 2 * time.Second}
	}
	hub.mu.Unlock()
	room := func() float64 {
		return metricValue(t, hub, "circuitmesh_discovery_links_dropped_total", "reason", "room")
	}
	addUnreachableMember(hub, "x", time.Now().Add(-5*time.Second), true)
	for range 3 {
		setLost(hub, "x", time.Now().Add(-5*time.Second))
		hub.disco.step(time.Now())
	}
	if r := room(); r != 0 {
		t.Fatalf("hub, at its maximum with links of 2 s RTT, gave up %v links for x, a member routing has not reached for 5 s", r)
	}
	setLost(hub, "x", time.Now().Add(-30*time.Second))
	hub.disco.step(time.Now())
	if r := room(); r != 1 {
		t.Fatalf("hub, at its maximum with links of 2 s RTT, gave up %v links for x, a member routing has not reached for 30 s; want 1", r)
	}
}

// The grace stops at a minute however slow a link reads: a neighbour that
// holds back its answers to hub's probes (its link reads 20 s) does not
// put off hub's room for a member routing has not reached for 61 s (ten
// of those RTTs would be 200 s).
func TestRoomGraceStopsAtAMinute(t *testing.T) {
	_, hub := fullTriangle(t)
	hub.mu.Lock()
	for peer, l := range hub.links {
		hub.links[peer] = slowQuality{Link: l, rtt: 20 * time.Second}
		break
	}
	hub.mu.Unlock()
	addUnreachableMember(hub, "x", time.Now().Add(-61*time.Second), true)
	setLost(hub, "x", time.Now().Add(-61*time.Second))
	hub.disco.step(time.Now())
	if r := metricValue(t, hub, "circuitmesh_discovery_links_dropped_total", "reason", "room"); r != 1 {
		t.Fatalf("hub, at its maximum with a link of 20 s RTT, gave up %v links for x, a member routing has not reached for 61 s; want 1", r)
	}
}

// A member that memberlist declares dead while this node's link to it is
// alive stays a member (and its link stays) while the link lives: on a
// node starved of CPU, memberlist's probes time out while the member and
// the link are fine, and forgetting the member had the node close the
// link it dialled ("no longer a gossip member") and count the member
// out. This holds for a member whose signed metadata the node has not
// verified too (the rule before kept only a verified member routing
// reaches). TestMemberDroppedByMemberlistKeptWhileItsLinkLives has
// memberlist itself drop the member, and a member leave.
func TestMemberDeclaredDeadKeptWhileItsLinkLives(t *testing.T) {
	c, hub := fullTriangle(t)
	d := hub.disco
	listed := func(name string) bool {
		for _, m := range hub.Members() {
			if m.Name == name {
				return true
			}
		}
		return false
	}
	unverify := func(name string) {
		d.mu.Lock()
		gm := d.members[name]
		gm.verified = false
		d.members[name] = gm
		d.mu.Unlock()
	}
	unverify("a")
	la := hub.link("a")
	d.NotifyLeave(&memberlist.Node{Name: "a", State: memberlist.StateDead})
	for range 3 {
		d.step(time.Now())
	}
	if !listed("a") || hub.link("a") != la || linkEnded(la) {
		t.Fatalf("after memberlist declared a dead while hub's link to it lives: listed %v, link kept %v", listed("a"), hub.link("a") == la && !linkEnded(la))
	}
	// Once the link ends (and routing reaches a no more), the member goes.
	c.memNet.Isolate("a")
	waitFor(t, "hub's link to a to end", 30*time.Second, func() bool { return linkEnded(la) })
	waitFor(t, "hub to forget a", 30*time.Second, func() bool {
		d.step(time.Now())
		return !listed("a")
	})
}

// A member that refuses links at its maximum again and again is dialled
// ever less often: 15 s after the first refusal, 30 s after the second, a
// minute after the third, also when each dial's link came up before the
// refusal (which ends the count of failed dials, not this). Before, every
// refusal at the maximum waited 15 s until the doubling of failed dials
// from 1 s passed it (the fifth): on a starved mesh nodes dialled peers at
// their maximum every 15 s.
func TestRefusalsAtMaximumBackOffLonger(t *testing.T) {
	_, hub := fullHub(t, nil)
	d := hub.disco
	const addr = "127.0.0.1:9"
	var waits []time.Duration
	for range 3 {
		d.mu.Lock()
		d.refusedFullLocked(addr)
		b := d.backoff[addr]
		waits = append(waits, time.Until(b.until).Round(time.Second))
		b.fails, b.full = 0, false // the next dial's link came up, then was refused
		d.mu.Unlock()
	}
	want := []time.Duration{fullBan, 2 * fullBan, 4 * fullBan}
	for i, w := range waits {
		if w < want[i]-time.Second || w > want[i] {
			t.Fatalf("waits after refusals at the maximum %v, want %v", waits, want)
		}
	}
}
