package node

import (
	"errors"
	"testing"
	"time"
)

// A node whose dials to every other member failed silently twice (a
// CPU-starved machine: the QUIC handshake heard nothing for
// HandshakeTimeout) bans each of them for an hour, as it would a forged
// member's address, and the others ban it likewise. Cut off from every
// member it knows, it still dials the one whose ban ends first (one such
// dial per islandEvery) and joins the mesh: before, it stayed alone with
// free link slots for the hour.
func TestCutOffNodeDialsBannedMember(t *testing.T) {
	c := newCluster(t, false)
	var seed string
	c.tweak = gossipTweak(&seed, 3, 1)
	a := c.add("a")
	seed = a.Status().GossipAddr
	b := c.add("b")
	reaches := func(n *Node, peer string) bool {
		p, ok := n.Peer(peer)
		return ok && p.Reachable
	}
	waitFor(t, "a and b to reach each other", 60*time.Second, func() bool { return reaches(a, "b") && reaches(b, "a") })

	c.tweak = gossipTweak(new(string), 3, 1) // no join yet
	x := c.add("x")
	silent := errors.New("dial: timeout: no recent network activity")
	ban := func(d *discovery, member string, at *Node) {
		m := Member{Name: member, LinkAddr: at.disco.linkAddr()}
		d.mu.Lock()
		defer d.mu.Unlock()
		for range unprovenDials {
			d.dialFailedLocked(m, silent, time.Now())
		}
		if !d.memberBannedLocked(m.Name, m.LinkAddr, time.Now()) || d.mayDialLocked(m.Name, m.LinkAddr, time.Now()) {
			t.Fatalf("%s is not banned from dialling %s after %d silent dials", d.n.cfg.Name, member, unprovenDials)
		}
	}
	ban(x.disco, "a", a)
	ban(x.disco, "b", b)
	ban(a.disco, "x", x)
	ban(b.disco, "x", x)
	if _, err := x.disco.ml.Join([]string{seed}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gossip to list x at a and b", 60*time.Second, func() bool {
		return len(a.Members()) == 3 && len(b.Members()) == 3 && len(x.Members()) == 3
	})
	start := time.Now()
	waitFor(t, "x to reach a and b", 60*time.Second, func() bool {
		return reaches(x, "a") && reaches(x, "b") && reaches(a, "x") && reaches(b, "x")
	})
	t.Logf("x, banned from every member and banned by them, reaches both %v after gossip listed it; x's links %v",
		time.Since(start).Round(time.Millisecond), x.Links())
}

// The override is for a node on the smaller side only, only while every
// lost router is barred, picks the bar that ends first, and is made at
// most once per islandEvery.
func TestIslandPick(t *testing.T) {
	now := time.Now()
	d := &discovery{n: &Node{}, dialing: map[string]bool{}}
	barred := map[string]time.Time{"p": now.Add(time.Hour), "q": now.Add(time.Minute)}
	if got := d.islandPickLocked(now, 1, 2, barred); got != "q" {
		t.Fatalf("cut off, both lost routers barred: pick %q, want q (its bar ends first)", got)
	}
	if got := d.islandPickLocked(now, 2, 2, barred); got != "" {
		t.Fatalf("reaching as many members as it lost: pick %q, want none", got)
	}
	if got := d.islandPickLocked(now, 1, 3, barred); got != "" {
		t.Fatalf("a lost router not barred (the policy may dial it): pick %q, want none", got)
	}
	d.islandAt = now
	if got := d.islandPickLocked(now.Add(islandEvery-time.Second), 1, 2, barred); got != "" {
		t.Fatalf("%v after the last such dial: pick %q, want none", islandEvery-time.Second, got)
	}
	if got := d.islandPickLocked(now.Add(islandEvery), 1, 2, barred); got != "q" {
		t.Fatalf("%v after the last such dial: pick %q, want q", islandEvery, got)
	}
}
