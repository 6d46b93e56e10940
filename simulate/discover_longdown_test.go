package simulate

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/node/topology"
)

// TestDiscoverLongLinkPassesUnreachableRouter: 32 routers in two regions
// join by gossip with TargetLinks 3. Once the mesh has settled, the
// underlay between a node x and the router l of its long link fails
// (gossip still lists l: others reach it), and so does the underlay
// between x and the routers it dialled beyond its near ones (so that no
// link it dialled as its long link before is its long link then). Every
// dial of x to l fails. x takes the next router in hash order, b, in the
// other region, as its long link and holds it. Before, only a router
// refusing at its maximum was passed over: x dialled l again at every
// back-off and held no long link (b was never dialled). When the
// underlay heals, x links to l again and drops b (make before break).
func TestDiscoverLongLinkPassesUnreachableRouter(t *testing.T) {
	synctest.Test(t, testLongLinkPassesUnreachableRouter)
}

func testLongLinkPassesUnreachableRouter(t *testing.T) {
	const target = 3
	maxLinks := max(topology.DefaultMax, 2*target)
	m := newLongMesh(t, 32, target, nil)
	c := m.c
	m.join()
	// x: a node holding a link it dialled to l, the router the hash ranks
	// first for its long link; the next, b, in the other region.
	x, l, b, cut := m.passing(maxLinks)
	t.Logf("%s holds %v; the underlay to %v (its long link's router %s and the others it dialled beyond its near ones) fails; %s is next in hash order", x, slices.Sorted(maps.Keys(m.peers(x))), cut, l, b)
	failed := time.Now()
	m.cutOff(x, cut)
	err := pollFor(3*time.Minute, func() error {
		if li, ok := m.peers(x)[b]; !ok || !li.Outbound {
			return fmt.Errorf("%s holds no link it dialled to %s", x, b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v 3 minutes after the underlay to %v failed (virtual): links %v", err, cut, slices.Sorted(maps.Keys(m.peers(x))))
	}
	t.Logf("%s dialled %s %v after the underlay failed; links %v", x, b, time.Since(failed).Round(time.Millisecond), slices.Sorted(maps.Keys(m.peers(x))))
	for range 12 {
		time.Sleep(5 * time.Second)
		if li, ok := m.peers(x)[b]; !ok || !li.Outbound {
			t.Fatalf("%s no longer holds its link to %s %v after the underlay failed: links %v", x, b, time.Since(failed).Round(time.Second), slices.Sorted(maps.Keys(m.peers(x))))
		}
	}

	if err := c.HealUnderlay(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	err = pollFor(10*time.Minute, func() error {
		ls := m.peers(x)
		if li, ok := ls[l]; !ok || !li.Outbound {
			return fmt.Errorf("%s holds no link it dialled to %s", x, l)
		}
		if _, ok := ls[b]; ok {
			return fmt.Errorf("%s still holds its link to %s", x, b)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v 10 minutes after the heal (virtual): links %v", err, slices.Sorted(maps.Keys(m.peers(x))))
	}
	t.Logf("%s linked to %s again and dropped %s %v after the heal; links %v", x, l, b, time.Since(healed).Round(time.Millisecond), slices.Sorted(maps.Keys(m.peers(x))))
}
