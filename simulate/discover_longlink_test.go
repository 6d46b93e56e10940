package simulate

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// TestDiscoverLongLinkLostAtTarget: 24 routers in two regions (each a disc
// 10 ms across, 30 ms apart) join by gossip with TargetLinks 3: two near
// links and a long one, chosen by a seeded hash. Once the mesh has
// settled, the link between a node x (above its target, below Max − 1
// links) and the router l of its long link is lost: the underlay between just the two fails for a while (gossip and
// routing between them go through others), and x keeps at least its
// target of links. Before, x held no long link from then on: a node at
// its target dialled only closer near neighbours and shortcuts, and l
// stays x's long link by the hash. Now x dials l again once the two can
// reach each other.
func TestDiscoverLongLinkLostAtTarget(t *testing.T) {
	synctest.Test(t, testLongLinkLost)
}

func testLongLinkLost(t *testing.T) {
	const target = 3
	m := newLongMesh(t, 24, target, nil)
	c, u, names, wants, peers := m.c, m.u, m.names, m.wants, m.peers
	m.join()
	n := len(names)
	held, dialled := 0, 0
	for _, name := range names {
		long, _ := wants(name)
		if li, ok := peers(name)[long]; ok {
			held++
			if li.Outbound {
				dialled++
			}
		}
	}
	t.Logf("%d of %d nodes hold a link to the router the hash ranks first for their long link, %d of them dialled it", held, n, dialled)

	// x: a node whose long link's router l is in the other region (no
	// shortcut or near link goes there) and does not want x itself (it
	// would dial x back), that keeps at least its target of links
	// without the ones it dialled beyond its near ones: cut off from
	// those, which hold its long link whichever router that is now, it
	// holds no long link, and the hash ranks l first.
	var x, l string
	var cut []string
	for _, name := range names {
		long, near := wants(name)
		lback, lnear := wants(long)
		var far []string
		ls := peers(name)
		for p, li := range ls {
			if li.Outbound && !slices.Contains(near, p) {
				far = append(far, p)
			}
		}
		if u.Region[long] != u.Region[name] && lback != name && !slices.Contains(lnear, name) &&
			len(ls)-len(far) >= target && len(ls) < defaultMaxLinks-1 {
			x, l, cut = name, long, far
			break
		}
	}
	if x == "" {
		t.Fatal("no node whose long link's router is in the other region keeps its target of links without the links it dialled beyond its near ones")
	}
	slices.Sort(cut)
	t.Logf("%s holds %d links; its long link's router by the hash is %s; cut off from %v", x, len(peers(x)), l, cut)

	lost := time.Now()
	m.cutOff(x, cut)
	left := len(peers(x))
	t.Logf("%s's links to them ended %v after the underlay failed; it holds %d links", x, time.Since(lost).Round(time.Millisecond), left)
	if left < target {
		t.Fatalf("%s holds %d links: below its target of %d it fills up with its long link first, which does not test a node at its target", x, left, target)
	}
	time.Sleep(30 * time.Second)
	if err := c.HealUnderlay(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	err := pollFor(3*time.Minute, func() error {
		if li, ok := peers(x)[l]; !ok || !li.Outbound {
			return fmt.Errorf("%s holds no link it dialled to %s", x, l)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v 3 minutes after the heal (virtual): %s has links %v", err, x, slices.Sorted(maps.Keys(peers(x))))
	}
	t.Logf("%s dialled %s again %v after the heal; it holds %d links", x, l, time.Since(healed).Round(time.Millisecond), len(peers(x)))
}

// longMesh is n routers in two regions (each a disc 10 ms across, 30 ms
// apart, placed by a fixed seed) with TargetLinks target, not started.
type longMesh struct {
	t     *testing.T
	c     *Cluster
	u     *Underlay
	names []string // n1, n2, ...: the first half west, the others east
	cfg   topology.Config
}

// pollFor is poll with a bound of d (virtual time in a synctest bubble).
func pollFor(d time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return poll(ctx, check)
}

// newLongMesh makes the cluster of a longMesh; config, when not nil,
// adjusts each node's configuration after TargetLinks is set. The
// cluster closes when the test ends.
func newLongMesh(t *testing.T, n, target int, config func(*node.Config)) *longMesh {
	c, err := NewCluster(Config{Backend: BackendMem, NodeConfig: func(cfg *node.Config) {
		cfg.Discovery.TargetLinks = target
		if config != nil {
			config(cfg)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	u := &Underlay{Region: map[string]string{}, Pos: map[string][2]float64{}, Inside: 500 * time.Microsecond,
		Between: map[[2]string]time.Duration{{"east", "west"}: 30 * time.Millisecond}}
	rng := rand.New(rand.NewPCG(1, 2))
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("n%d", i)
		names = append(names, name)
		u.Region[name] = "west"
		if i > n/2 {
			u.Region[name] = "east"
		}
		rho, phi := 5*math.Sqrt(rng.Float64()), 2*math.Pi*rng.Float64()
		u.Pos[name] = [2]float64{rho * math.Cos(phi), rho * math.Sin(phi)}
	}
	if err := c.SetUnderlay(u); err != nil {
		t.Fatal(err)
	}
	// The nodes' seed is the mesh name's FNV-1a hash.
	h := fnv.New64a()
	h.Write([]byte(c.cfg.Mesh))
	return &longMesh{t: t, c: c, u: u, names: names,
		cfg: topology.Config{Target: target, Long: 1, Probes: -1, Adds: 2 * target, Seed: int64(h.Sum64())}}
}

// join has every node join the first by gossip, waits until every pair
// is reachable, then a minute (links old enough to be replaced;
// settled), and logs the mesh.
func (m *longMesh) join() {
	m.t.Helper()
	took := m.joinAll(m.names[1:]...)
	ms, err := m.c.MeasureMesh()
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Logf("every pair reachable %v (virtual) after the joins; a minute later: %v", took.Round(time.Millisecond), ms)
}

// joinAll has names join the first node by gossip, waits until every
// pair of the cluster's nodes is reachable, then a minute, and returns
// how long the first wait took.
func (m *longMesh) joinAll(names ...string) time.Duration {
	m.t.Helper()
	if err := m.c.Discover(context.Background(), m.names[0], names...); err != nil {
		m.t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	took, err := m.c.WaitReachable(wctx)
	cancel()
	if err != nil {
		m.t.Fatal(err)
	}
	time.Sleep(time.Minute)
	return took
}

// wants returns the long link's router of self and its near ones, as its
// policy ranks them by the underlay's round trips, among the routers but
// those in without (the long link's router then is the next in hash
// order).
func (m *longMesh) wants(self string, without ...string) (long string, near []string) {
	var ms []topology.Member
	for _, name := range m.names {
		if name != self && !slices.Contains(without, name) {
			ms = append(ms, topology.Member{Name: name, Addr: name, RTT: 2 * m.u.Latency(self, name)})
		}
	}
	p := topology.Decide(topology.Input{Self: self, Members: ms, Config: m.cfg})
	for i, a := range p.Add {
		if p.Why[i] == topology.WhyLong {
			long = a.Name
		} else {
			near = append(near, a.Name)
		}
	}
	return long, near
}

// peers returns the links of name by peer.
func (m *longMesh) peers(name string) map[string]node.LinkInfo {
	ls, err := m.c.Links(name)
	if err != nil {
		m.t.Fatal(err)
	}
	out := map[string]node.LinkInfo{}
	for _, l := range ls {
		out[l.Peer] = l
	}
	return out
}

// passing returns a node x holding a link it dialled to l, the router
// the hash ranks first for its long link, not the seed, with room for
// two more links below maxLinks; the next router in hash order, b, is in
// the other region and x holds no link to it. Neither wants x (it would
// dial x). cut lists the routers x dialled beyond its near ones, l among
// them.
func (m *longMesh) passing(maxLinks int) (x, l, b string, cut []string) {
	m.t.Helper()
	wantsNot := func(r, x string) bool {
		long, near := m.wants(r)
		return long != x && !slices.Contains(near, x)
	}
	for _, name := range m.names {
		long, near := m.wants(name)
		next, _ := m.wants(name, long)
		ls := m.peers(name)
		_, hasNext := ls[next]
		if li, ok := ls[long]; ok && li.Outbound && !hasNext && long != m.names[0] && len(ls) <= maxLinks-2 &&
			m.u.Region[next] != m.u.Region[name] && wantsNot(long, name) && wantsNot(next, name) {
			for p, li := range ls {
				if li.Outbound && !slices.Contains(near, p) {
					cut = append(cut, p)
				}
			}
			slices.Sort(cut)
			return name, long, next, cut
		}
	}
	m.t.Fatal("no node below Max − 1 holds a link it dialled to its long link's router, with the next router in hash order in the other region and not linked")
	return "", "", "", nil
}

// cutOff fails the underlay between x and the routers of cut, and waits
// until x holds no link to them.
func (m *longMesh) cutOff(x string, cut []string) {
	m.t.Helper()
	if err := m.c.PartitionUnderlay([]string{x}, cut); err != nil {
		m.t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := poll(wctx, func() error {
		ls := m.peers(x)
		for _, p := range cut {
			if _, ok := ls[p]; ok {
				return fmt.Errorf("%s still holds its link to %s", x, p)
			}
		}
		return nil
	})
	if err != nil {
		m.t.Fatal(err)
	}
}
