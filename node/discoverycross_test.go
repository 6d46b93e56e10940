package node

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// TestSimultaneousDialsCountNoYoungLink: pairs of nodes whose discovery
// dials each other at once, a's dial a moment after b's (0 to 3.5 ms).
// The transport keeps one link, the one the smaller name dialled, and
// closes the other as its duplicate; when b's link was up before a's
// reached b, b's dial saw its link end within a millisecond. Before, b
// counted that as a link of a that died young (youngLinks of them in a
// row bar a, as a member that closes every link: b then refuses a's
// links for 5 minutes): 22 of 48 pairs counted one. The link that
// replaced it lives on and is the dial's: none may count.
func TestSimultaneousDialsCountNoYoungLink(t *testing.T) {
	c := newCluster(t, true)
	relayed(c, nil)
	rounds := 24
	var counted []string
	for round := range rounds {
		a, b := c.add(fmt.Sprintf("a%d", round)), c.add(fmt.Sprintf("b%d", round))
		c.build(a.Name()+"-r", b.Name()+"-r")
		c.waitRoute(a.Name(), b.Name(), 0)
		c.waitRoute(b.Name(), a.Name(), 0)
		go b.disco.dial(Member{Name: a.Name(), LinkAddr: a.Addr().String()}, topology.WhyTarget)
		time.Sleep(time.Duration(round%8) * 500 * time.Microsecond)
		go a.disco.dial(Member{Name: b.Name(), LinkAddr: b.Addr().String()}, topology.WhyTarget)
		settledLink(t, a, b)
		if ya, yb := a.disco.youngCount(b.Name()), b.disco.youngCount(a.Name()); ya+yb > 0 {
			counted = append(counted, fmt.Sprintf("%s counts %d, %s counts %d", a.Name(), ya, b.Name(), yb))
		}
		a.Close()
		b.Close()
	}
	t.Logf("%d of %d pairs dialling each other at once counted a link that died young: %v", len(counted), rounds, counted)
	if len(counted) > 0 {
		t.Errorf("%d of %d pairs counted their duplicate link as one that died young", len(counted), rounds)
	}
}

// youngCount is d's count of links to peer that died young in a row.
func (d *discovery) youngCount(peer string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.youngLocked(peer)
}

// TestCrossedDialsDoNotBarMember: b's discovery dials a three times, and
// each time a's dial to b, begun before b's link reached a, comes up after
// it (here a dials b at another of b's addresses, which is how the
// transport lets a dial begin while a link to the same socket is up): the
// transport keeps a's link, the one the smaller name dialled, and closes
// b's as its duplicate. b then closes the link (its policy's choice).
// Before, b counted each duplicate as a link of a that died young and
// barred a after the third: a's next link was refused for 5 minutes. Now
// the link that replaced b's is b's dial's link, closed by b itself, and
// b takes a's next link.
func TestCrossedDialsDoNotBarMember(t *testing.T) {
	c := newCluster(t, true)
	relayed(c, func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.ListenAddr = "0.0.0.0:0"
		}
	})
	a, b := c.add("a"), c.add("b")
	c.build("a-r", "b-r")
	c.waitRoute("a", "b", 0)
	c.waitRoute("b", "a", 0)
	port := strconv.Itoa(b.Addr().(*net.UDPAddr).Port)
	for round := 1; round <= youngLinks; round++ {
		b.disco.dial(Member{Name: "a", LinkAddr: a.Addr().String()}, topology.WhyTarget)
		waitFor(t, "b's link to a", patience, func() bool {
			l := b.link("a")
			return l != nil && l.Outbound() && a.link("b") != nil
		})
		crossed := b.link("a")
		a.disco.dial(Member{Name: "b", LinkAddr: net.JoinHostPort("127.0.0.2", port)}, topology.WhyTarget)
		waitFor(t, "b's dial to note its link's end", patience, func() bool { return linkEnded(crossed) && !ending(b, "a") })
		if n, barred := muteCount(b, "a"); barred {
			t.Fatalf("round %d: b's link ended: %v; b bars a (bar %d)", round, crossed.Err(), n)
		}
		settledLink(t, a, b)
		t.Logf("round %d: b's link ended: %v; b counts %d links of a that died young", round, crossed.Err(), b.disco.youngCount("a"))
		b.link("a").Close("test: the link ends")
		waitFor(t, "the link to end, and the dials to note it", patience, func() bool {
			return a.link("b") == nil && b.link("a") == nil && !ending(a, "b") && !ending(b, "a")
		})
	}
	if _, err := a.transport.Dial(ctxT(t, patience), net.JoinHostPort("127.0.0.1", port)); err != nil {
		t.Fatalf("a dials b: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && b.link("a") == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if _, barred := muteCount(b, "a"); b.link("a") == nil || barred {
		t.Errorf("after %d of its dials were crossed by a's, b did not take a's link (b bars a: %v)", youngLinks, barred)
	}
}

// ending reports whether n's discovery has yet to note the end of the
// link it dialled to peer.
func ending(n *Node, peer string) bool {
	n.disco.mu.Lock()
	defer n.disco.mu.Unlock()
	return n.disco.endingLocked(peer)
}

// relayed gives the nodes c adds discovery (at most 3 links, target 2)
// that no member joins, so that only the dials a test makes link, and
// more, if not nil; node r gets none: linked to the others (c.build), it
// keeps them routed to each other while their own links come and go (a
// node's discovery closes a link it dialled to a node that is neither a
// gossip member nor routed).
func relayed(c *cluster, more func(*Config)) {
	seededGossip(c, 3, 2, func(cfg *Config) {
		if cfg.Name == "r" {
			cfg.Discovery = DiscoveryConfig{}
		}
		if more != nil {
			more(cfg)
		}
	})
}
