package node

import (
	"context"
	"testing"
	"time"
)

// fullTriangle starts a, b and c linked to each other at MaxLinks=2 (each
// link redundant: the third node reaches its peer too), honouring no
// incoming static claim, and returns them with the gossip seed.
func fullTriangle(t *testing.T, c *cluster, key []byte) ([]*Node, string) {
	t.Helper()
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, MaxLinks: 2, TargetLinks: 2, StaticInLinks: -1,
			Interval: 500 * time.Millisecond, JoinInterval: 2 * time.Second}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	var nodes []*Node
	for _, name := range []string{"a", "b", "c"} {
		nd := c.add(name)
		if seed == "" {
			seed = nd.Status().GossipAddr
		}
		nodes = append(nodes, nd)
	}
	c.tweak = nil
	waitFor(t, "a, b and c linked to each other", time.Minute, func() bool {
		for _, nd := range nodes {
			if len(nd.Links()) != 2 || nd.Status().Reachable != 2 {
				return false
			}
		}
		return true
	})
	return nodes, seed
}

func roomDrops(t *testing.T, nd *Node) float64 {
	t.Helper()
	return metricValue(t, nd, "circuitmesh_discovery_links_dropped_total", "reason", "room")
}

// Gossip members with the gossip key but no certificate, announcing
// addresses nobody answers at, never become reachable. A full node gives
// up at most one honest link for such members (the once-per-interval
// allowance that lets full groups merge), not one per fake address.
func TestFakeMembersDoNotMakeFullNodesDropLinks(t *testing.T) {
	key := make([]byte, 32)
	c := newCluster(t, true)
	nodes, seed := fullTriangle(t, c, key)
	for i := range 4 {
		sink := newUDPSink(t)
		fakeMember(t, "fake"+string(rune('0'+i)), key, sink.pc.LocalAddr().String(), seed)
	}
	waitFor(t, "every node to know the fake members", time.Minute, func() bool {
		for _, nd := range nodes {
			if len(nd.Members()) < 7 {
				return false
			}
		}
		return true
	})
	// The fakes are lost after lostGrace; each address gets unprovenDials
	// dials at 1 s, 2 s of back-off: without a bound, a node gives up a
	// link before each.
	time.Sleep(20 * time.Second)
	for _, nd := range nodes {
		if got := roomDrops(t, nd); got > 1 {
			t.Errorf("%s gave up %v links for members nobody vouched for, want at most 1", nd.Name(), got)
		}
	}
}

// A certified gossip member that links to a full node and drops the link
// at once, again and again, never reachable through routing, gets a link
// evicted for it at most once, not on every reconnect.
func TestReconnectingPeerEvictsOnce(t *testing.T) {
	key := make([]byte, 32)
	c := newCluster(t, true)
	nodes, seed := fullTriangle(t, c, key)
	a := nodes[0]
	x := c.add("x") // no discovery of its own: it links only when told
	fakeMember(t, "x", key, x.Addr().String(), seed)
	waitFor(t, "a to know x from gossip", time.Minute, func() bool {
		for _, m := range a.Members() {
			if m.Name == "x" {
				return true
			}
		}
		return false
	})
	addr := a.Addr().String()
	for range 3 {
		waitFor(t, "a back at its maximum without x", time.Minute, func() bool {
			ls := a.Links()
			for _, l := range ls {
				if l.Peer == "x" {
					return false
				}
			}
			return len(ls) == 2
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := x.Link(ctx, addr)
		cancel()
		if err == nil {
			waitFor(t, "x's link to a settled", 20*time.Second, func() bool {
				for _, l := range x.Links() {
					if l.Peer == "a" {
						return true
					}
				}
				return false
			})
		}
		_ = x.Unlink(addr)
	}
	if got := roomDrops(t, a); got > 1 {
		t.Fatalf("a evicted %v links for x reconnecting, want at most 1", got)
	}
}
