package node

import (
	"math"
	"testing"
	"time"
)

// A member that memberlist itself drops while this node's link to it
// lives stays a member while the link lives, and goes with the link.
// Memberlist passes NotifyLeave a Node whose State it never sets, so a
// rule that asked for StateDead there never held outside tests that made
// the Node up: the hub forgot the member at once (and, had it dialled the
// link while routing did not reach the member, closed it as "no longer a
// gossip member"); on a node starved of CPU, memberlist declares members
// dead whose answers come late. A member that leaves for real goes too,
// once it closes its link.
func TestMemberDroppedByMemberlistKeptWhileItsLinkLives(t *testing.T) {
	c, hub := fullTriangle(t)
	d := hub.disco
	listed := func(name string) bool { return lists(hub, name) }
	// a's metadata counts as unverified, so that routing reaching a does
	// not keep it either.
	d.mu.Lock()
	gm := d.members["a"]
	gm.verified = false
	d.members["a"] = gm
	d.mu.Unlock()
	// b declares a dead, at an incarnation a cannot refute: the hub's
	// memberlist drops a for good, as gossip does a member whose probes
	// time out.
	la := hub.link("a")
	conn := forgerConn(t)
	if _, err := conn.WriteToUDP(forgedDeadFrom(t, "a", "b", math.MaxUint32, make([]byte, 32)), gossipAddr(t, hub)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "hub's memberlist to drop a", patience, func() bool { return !listedAt(hub, "a", gossipAddr(t, c.nodes["a"])) })
	for range 3 {
		d.step(time.Now())
	}
	if !listed("a") || hub.link("a") != la || linkEnded(la) {
		t.Fatalf("after memberlist dropped a while hub's link to it lives: listed %v, link kept %v", listed("a"), hub.link("a") == la && !linkEnded(la))
	}
	// Once the link ends (and routing reaches a no more), the member goes.
	c.memNet.Isolate("a")
	waitFor(t, "hub's link to a to end", patience, func() bool { return linkEnded(la) })
	waitFor(t, "hub to forget a", patience, func() bool {
		d.step(time.Now())
		return !listed("a")
	})
	// b leaves: memberlist hears it left, and b closes its links as it
	// goes.
	b := c.nodes["b"]
	delete(c.nodes, "b")
	b.Close()
	waitFor(t, "hub to forget b, which left", patience, func() bool {
		d.step(time.Now())
		return !listed("b")
	})
}
