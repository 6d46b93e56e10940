package node

import (
	"context"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// muteCount is how many mute links n counted of peer, and whether n bars
// peer now.
func muteCount(n *Node, peer string) (count int, barred bool) {
	d := n.disco
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.muted[peer]; e != nil {
		count = e.n
	}
	return count, d.mutedLocked(peer, time.Now())
}

// TestMuteCloseLeavesReplacementLink: b's link to a is mute, and b
// vanishes and restarts while a's policy step judges the link: the
// restarted b's link replaces the mute one before the step closes it. The
// step closes the link that was mute, not the one that replaced it.
// Before, the close took whatever link a held to b at that moment, and
// took down the restarted b's new link.
func TestMuteCloseLeavesReplacementLink(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 1, TargetLinks: 1,
			Interval: 500 * time.Millisecond}
	}
	a := c.add("a")
	b, hole := addHoled(t, c, "b")
	t.Cleanup(func() { b.Close() })
	if _, err := b.transport.Dial(ctxT(t, patience), a.Addr().String()); err != nil {
		t.Fatalf("b dials a: %v", err)
	}
	var mute links.Link
	waitFor(t, "a to hold b's link", patience, func() bool { mute = a.link("b"); return mute != nil })
	current := a.Links()
	var replacement links.Link
	heard := func(peer string) bool {
		if peer != "b" || replacement != nil {
			return false
		}
		// b vanishes and restarts while the step runs: a takes the
		// restarted b's link once the old one falls silent.
		hole.cut.Store(true)
		b2 := c.add("b")
		waitFor(t, "a to take the restarted b's link", patience, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = b2.transport.Dial(ctx, a.Addr().String())
			replacement = a.link("b")
			return replacement != nil && replacement != mute
		})
		return false
	}
	// Past the grace since the mute link came up.
	a.disco.muteLinks(current, heard, time.Now().Add(2*muteGraceMax))
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && !linkEnded(replacement) {
		time.Sleep(50 * time.Millisecond)
	}
	if linkEnded(replacement) {
		t.Errorf("a closed the restarted b's new link for the old link's silence: %v", replacement.Err())
	}
	if a.link("b") != replacement {
		t.Errorf("a holds no link to the restarted b")
	}
}

// TestRestartedPeerNotKeptBarredForMute: b starts mute (a node that sends
// no routing message: stalled at its start, or a build that does not
// speak routing yet), so a closes their link after the mute grace and
// bars b. b then restarts healthy: a links to the new instance and routes
// to it. Before, the bar was the name's, and a refused b's links for the
// bar's 5 minutes (up to an hour after further mute links).
func TestRestartedPeerNotKeptBarredForMute(t *testing.T) {
	c := newCluster(t, true)
	mute := true
	seed := seededGossip(c, 1, 1, func(cfg *Config) {
		if cfg.Name == "b" {
			// b closes no link a dialled (it is below its maximum):
			// only a judges the link.
			cfg.Discovery.MaxLinks = 14
			if mute {
				mutedTransport(cfg)
			}
		}
	})
	a := c.add("a")
	seed(a)
	b := c.add("b")
	waitFor(t, "a to bar b after a mute link", patience, func() bool { _, barred := muteCount(a, "b"); return barred })
	b.Close()
	delete(c.nodes, "b")
	mute = false
	start := time.Now()
	c.add("b")
	deadline := start.Add(patience)
	for time.Now().Before(deadline) {
		if p, ok := a.Peer("b"); ok && p.Reachable {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	n, barred := muteCount(a, "b")
	p, _ := a.Peer("b")
	t.Logf("%v after b restarted: a reaches b: %v; a counted %d mute links of b, bars it: %v",
		time.Since(start).Round(time.Millisecond), p.Reachable, n, barred)
	if !p.Reachable {
		t.Errorf("a does not reach b %v after b restarted healthy: b's mute link before its restart still bars it", patience)
	}
	if n != 1 {
		t.Errorf("a counted %d mute links of b, want the one before its restart kept", n)
	}
}

// TestAttackMuteRestartsKeepBar: m restarts again and again, mute each
// time. The first restart ends a's bar (a new instance may be an honest
// node that was mute for a while), the next mute link bars m for twice as
// long, and further restarts end no bar: a links to at most two of m's
// three instances.
func TestAttackMuteRestartsKeepBar(t *testing.T) {
	if testing.Short() {
		t.Skip("three mute graces")
	}
	c := newCluster(t, true)
	seed := seededGossip(c, 1, 1, func(cfg *Config) {
		if cfg.Name == "m" {
			cfg.Discovery.MaxLinks = 14
			mutedTransport(cfg)
		}
	})
	a := c.add("a")
	seed(a)
	restart := func() {
		if m := c.nodes["m"]; m != nil {
			m.Close()
			delete(c.nodes, "m")
		}
		c.add("m")
	}
	for i := 1; i <= 2; i++ {
		restart()
		waitFor(t, "a to bar m after a mute link", patience, func() bool { n, barred := muteCount(a, "m"); return barred && n == i })
	}
	restart()
	// Long enough for m's third instance to link and be judged mute.
	watch := 2*goodLink + 5*time.Second
	linked := 0
	for end := time.Now().Add(watch); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if a.link("m") != nil {
			linked++
		}
	}
	n, barred := muteCount(a, "m")
	t.Logf("after m's third start: a counted %d mute links of m, bars it: %v, held a link to it in %d of its samples", n, barred, linked)
	if n != 2 || !barred || linked > 0 {
		t.Errorf("m's third instance reset its bar at a: %d mute links counted, barred %v, linked in %d samples", n, barred, linked)
	}
}
