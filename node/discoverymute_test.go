package node

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node/topology"
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

// TestMemberNotDialledBeforeItsLinkEndIsNoted: b closes every link a's
// discovery dials to it at once; the third such end bars b. A dial of b
// decided at the instant that third link ended, before a's dial noted the
// end, is not made: the member is not dialled until its dial has noted
// what the end means. Here a's discovery mutex is held while the link
// ends, so that the new dial (queued on it first) runs before the old
// dial's goroutine notes the end. Before the guard, the new dial went out
// past the bar the end was about to set.
func TestMemberNotDialledBeforeItsLinkEndIsNoted(t *testing.T) {
	c := newCluster(t, true)
	relayed(c, func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.Discovery = DiscoveryConfig{}
		}
	})
	a, b := c.add("a"), c.add("b")
	c.build("a-r", "b-r")
	c.waitRoute("a", "b", 0)
	member := Member{Name: "b", LinkAddr: b.Addr().String()}
	var last, back links.Link
	for i := 1; i <= youngLinks; i++ {
		a.disco.dial(member, topology.WhyTarget)
		waitFor(t, "a's link to b", patience, func() bool {
			last, back = a.link("b"), b.link("a")
			return last != nil && last.Outbound() && !linkEnded(last) && back != nil && !linkEnded(back)
		})
		if i == youngLinks {
			break
		}
		back.Close("test: b closes every link at once")
		waitFor(t, "a's dial to note its link's end", patience, func() bool { return linkEnded(last) && !ending(a, "b") })
	}
	d := a.disco
	d.mu.Lock()
	locked := true
	defer func() {
		if locked {
			d.mu.Unlock()
		}
	}()
	dialled := make(chan struct{})
	go func() {
		defer close(dialled)
		d.dial(member, topology.WhyRepair)
	}()
	waitFor(t, "the new dial to wait for discovery's mutex", patience, func() bool { return waitsForMutex("(*discovery).dialMember(") })
	if linkEnded(back) {
		t.Fatalf("b's link from a ended before b closed it: %v", back.Err())
	}
	back.Close("test: b closes every link at once")
	waitFor(t, "the old dial to wait for discovery's mutex", patience, func() bool {
		return linkEnded(last) && waitsForMutex("(*discovery).dialMember.func")
	})
	d.mu.Unlock()
	locked = false
	<-dialled
	d.mu.Lock()
	again := d.dialing["b"]
	d.mu.Unlock()
	waitFor(t, "a's dial to note its link's end", patience, func() bool { return !ending(a, "b") })
	n, barred := muteCount(a, "b")
	t.Logf("a dialled b again at the instant its third link ended: %v; a bars b: %v (bar %d)", again, barred, n)
	if again {
		t.Errorf("a dialled b before noting the end of its link to it, past the bar that end set")
	}
	if !barred {
		t.Errorf("a does not bar b after %d links to it ended at once", youngLinks)
	}
}

// waitsForMutex reports whether a goroutine whose stack holds fn waits to
// lock a mutex.
func waitsForMutex(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) && strings.Contains(g, "sync.(*Mutex).Lock") {
			return true
		}
	}
	return false
}
