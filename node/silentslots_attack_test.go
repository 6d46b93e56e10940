package node

import (
	"fmt"
	"testing"
	"time"
)

// TestAttackSilentLinksEclipseJoiner: three holders of valid certificates
// (m1 to m3: real QUIC transports that accept and keep a link but never
// send a routing message, and are not gossip members) link to v as it
// starts, before its gossip join reaches the honest mesh. v's incoming
// links fill its MaxLinks (3); incoming links are never dropped for being
// unwanted, and room for a repair link (topology.Room, both in v's own
// plan and at admission of an honest node's repair dial) is only given up
// on a link whose peer another neighbour reaches (Alternates > 0), which
// a routing-silent peer never has. So v, which gossip tells of h1 to h3,
// never links to an honest node: the honest outcome is that v reaches
// the honest mesh within 40 s.
func TestAttackSilentLinksEclipseJoiner(t *testing.T) {
	c := newCluster(t, true)
	var seed string
	joinSeed := true
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 3, TargetLinks: 2,
			Interval: 500 * time.Millisecond, JoinInterval: time.Hour}
		if seed != "" && joinSeed {
			cfg.Discovery.Join = []string{seed}
		}
	}
	honest := []string{"h1", "h2", "h3"}
	for _, name := range honest {
		n := c.add(name)
		if seed == "" {
			seed = n.Status().GossipAddr
		}
	}
	for _, a := range honest {
		for _, b := range honest {
			if a != b {
				c.waitRoute(a, b, 0)
			}
		}
	}
	// v starts; its seed is not reached yet (JoinInterval is long, so the
	// join below is the only one), and the attackers link to it first, as
	// a member watching gossip for newcomers would.
	joinSeed = false
	v := c.add("v")
	for i := 1; i <= 3; i++ {
		newAttacker(t, c, fmt.Sprintf("m%d", i), v)
	}
	waitFor(t, "v to hold the three silent links", patience, func() bool { return len(v.Links()) == 3 })
	if _, err := v.disco.ml.Join([]string{seed}); err != nil {
		t.Fatalf("v joins gossip: %v", err)
	}
	start := time.Now()
	deadline := start.Add(40 * time.Second)
	reached := func() int {
		k := 0
		for _, h := range honest {
			if p, ok := v.Peer(h); ok && p.Reachable {
				k++
			}
		}
		return k
	}
	for reached() < len(honest) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	var peers []string
	for _, l := range v.Links() {
		peers = append(peers, l.Peer)
	}
	members := 0
	for _, m := range v.Members() {
		for _, h := range honest {
			if m.Name == h {
				members++
			}
		}
	}
	t.Logf("after %v: v lists %d of 3 honest members in gossip, reaches %d of them; its links: %v",
		time.Since(start).Round(time.Millisecond), members, reached(), peers)
	if reached() < len(honest) {
		t.Errorf("v reaches %d of %d honest nodes 40 s after joining: three routing-silent certificate holders hold all %d of its link slots (%v)",
			reached(), len(honest), 3, peers)
	}
}
