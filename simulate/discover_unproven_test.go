package simulate

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestDiscoverDialsRouterCutAtJoinAfterHeal: 23 routers in two regions
// join by gossip with TargetLinks 3 and settle; then a 24th, x, joins
// while the underlay between it and the router l the hash ranks first
// for its long link fails (gossip and routing between the two go
// through others). x never linked to l, so every dial of x to l fails
// at an address where no handshake proved l's certificate. Once x has
// settled the underlay heals, and x links to l within 10 minutes: l's
// address is the one its signed gossip metadata names, and a silent
// address named so is banned for a minute, doubling, not for an hour as
// an address named in unsigned gossip. Before, x never dialled l again
// for the hour of the ban of unproven addresses, as for an address a
// member without a certificate names (a victim's): a router briefly cut
// off from a node (or one whose link listener was not up yet) stayed
// out of its reach for an hour.
//
// x joins last so that its join's state exchange brings every member,
// l too, before its policy's first step: when all joined at once, a
// node whose first steps ran before gossip brought it l linked another
// router as its long link, kept it (a long link stays while its router
// is outside the near set) and never dialled l, so the heal had nothing
// to undo (10 of 30 runs with GOMAXPROCS=1 beside two busy loops). No
// node reaches its maximum (MaxLinks 24): a node at it dials no router
// it comes back to beside its links (topology's Coming back), and x
// held 10 incoming and outgoing links in some of those runs.
func TestDiscoverDialsRouterCutAtJoinAfterHeal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs in make test-long: over 4 minutes of wall time under -race at load average 27 to 32 (20 s without); TestSilentAddressNamedInSignedGossipIsBannedBriefly (node) checks the ban in the quick suite")
	}
	synctest.Test(t, testDialsRouterCutAtJoin)
}

func testDialsRouterCutAtJoin(t *testing.T) {
	const target = 3
	// No node reaches its maximum: a node at it dials no router beside
	// its links to come back to (topology's Coming back).
	m := newLongMesh(t, 24, target, func(cfg *node.Config) { cfg.Discovery.MaxLinks = 24 })
	c := m.c
	// x: a node whose long link's router l is in the other region (no
	// near link of either goes there) and does not want x itself (it
	// would dial x, proving its address).
	var x, l string
	for _, name := range m.names[1:] {
		long, _ := m.wants(name)
		lback, lnear := m.wants(long)
		if long != m.names[0] && m.u.Region[long] != m.u.Region[name] && lback != name && !slices.Contains(lnear, name) {
			x, l = name, long
			break
		}
	}
	if x == "" {
		t.Fatal("no node's long link's router is in the other region without wanting the node back")
	}
	m.partBefore(x, l)
	t.Logf("the underlay between %s and %s, its long link's router by the hash, fails before %s joins", x, l, x)
	// x joins the settled mesh last (see above).
	others := slices.DeleteFunc(slices.Clone(m.names[1:]), func(name string) bool { return name == x })
	m.t.Logf("%d joined: every pair reachable %v (virtual) after the joins", len(others), m.joinAll(others...).Round(time.Millisecond))
	m.t.Logf("%s joined: every pair reachable %v (virtual) after its join", x, m.joinAll(x).Round(time.Millisecond))
	if _, ok := m.peers(x)[l]; ok {
		t.Fatalf("%s holds a link to %s across the failed underlay", x, l)
	}
	t.Logf("%s holds %v", x, slices.Sorted(maps.Keys(m.peers(x))))
	if err := c.HealUnderlay(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	err := pollFor(10*time.Minute, func() error {
		if li, ok := m.peers(x)[l]; !ok || !li.Outbound {
			return fmt.Errorf("%s holds no link it dialled to %s", x, l)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v 10 minutes after the heal (virtual): links %v", err, slices.Sorted(maps.Keys(m.peers(x))))
	}
	t.Logf("%s dialled %s %v after the heal; links %v", x, l, time.Since(healed).Round(time.Second), slices.Sorted(maps.Keys(m.peers(x))))
}

// partBefore fails the underlay between x and y, links and gossip, as
// PartitionUnderlay does, before either node starts; HealUnderlay undoes
// it.
func (m *longMesh) partBefore(x, y string) {
	c := m.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gossipOf().parted[mkpair(x, y)] = true
	c.be.block(x, y, true)
}
