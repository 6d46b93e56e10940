package node

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// gossipCluster starts n nodes on in-memory links with real memberlist
// gossip on loopback, every node joining through the first one started,
// in the given order of indexes.
func gossipCluster(t *testing.T, order []int, maxLinks int) (*cluster, []string) {
	return gossipClusterOn(t, false, order, maxLinks)
}

func gossipClusterOn(t *testing.T, quic bool, order []int, maxLinks int) (*cluster, []string) {
	t.Helper()
	c := newCluster(t, quic)
	var seed string
	c.tweak = gossipTweak(&seed, maxLinks, 4)
	var names []string
	for _, i := range order {
		name := fmt.Sprintf("circuitmesh-%d", i)
		c.leafs[name] = i%5 == 4 && i > 0 // one node in five is a leaf
		n := c.add(name)
		if seed == "" {
			seed = n.Status().GossipAddr
		}
		names = append(names, name)
	}
	return c, names
}

// gossipTweak configures nodes for gossip on loopback with the given
// bounds, joining through *seed once it is set.
func gossipTweak(seed *string, maxLinks, target int) func(*Config) {
	return func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: maxLinks, TargetLinks: target, Interval: time.Second, JoinInterval: 2 * time.Second}
		if *seed != "" {
			cfg.Discovery.Join = []string{*seed}
		}
	}
}

// meshStats is the link graph of a cluster.
type meshStats struct {
	maxDegree   int
	meanDegree  float64
	diameter    int // in hops; -1 if disconnected
	unreachable int // ordered pairs routing does not reach
}

func statsOf(c *cluster, names []string) meshStats {
	adj := map[string][]string{}
	in := map[string]bool{}
	for _, a := range names {
		in[a] = true
	}
	var st meshStats
	sum := 0
	for _, a := range names {
		for _, l := range c.nodes[a].Links() {
			adj[a] = append(adj[a], l.Peer)
		}
		d := len(adj[a])
		st.maxDegree = max(st.maxDegree, d)
		sum += d
		reach := 0
		for _, p := range c.nodes[a].Peers() {
			if p.Reachable && in[p.Name] {
				reach++
			}
		}
		st.unreachable += len(names) - 1 - reach
	}
	st.meanDegree = float64(sum) / float64(len(names))
	for _, a := range names {
		dist := map[string]int{a: 0}
		q := []string{a}
		for len(q) > 0 {
			x := q[0]
			q = q[1:]
			for _, y := range adj[x] {
				if _, ok := dist[y]; !ok {
					dist[y] = dist[x] + 1
					st.diameter = max(st.diameter, dist[y])
					q = append(q, y)
				}
			}
		}
		if len(dist) != len(names) {
			st.diameter = -1
			return st
		}
	}
	return st
}

// waitMesh waits until every node reaches every other and no node's degree
// is above maxLinks, and returns the time it took and the graph.
func waitMesh(t *testing.T, c *cluster, names []string, maxLinks int, within time.Duration) (time.Duration, meshStats) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		st := statsOf(c, names)
		if st.unreachable == 0 && st.maxDegree <= maxLinks && st.diameter > 0 {
			return time.Since(start), st
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d ordered pairs unreachable, max degree %d (bound %d), diameter %d",
				within, st.unreachable, st.maxDegree, maxLinks, st.diameter)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDiscoveryBuildsConnectedBoundedMesh(t *testing.T) {
	// 30 nodes take about 1 s of an idle machine without the race
	// detector; the quick suite runs 16.
	sizes := []int{16}
	if !testing.Short() {
		sizes = []int{30, 100}
	}
	const maxLinks = 8
	for _, n := range sizes {
		for _, random := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/random=%v", n, random), func(t *testing.T) {
				if n > 30 && raceEnabled {
					// Measured at load 7 on 2 cores: the 100 nodes took
					// 8.5 minutes to start, and the mesh was not checked
					// 12 minutes in; without the race detector both orders
					// took 2.3 minutes at that load, and make test-long
					// runs them so.
					t.Skipf("%d in-process gossip nodes under the race detector take more than the suite's timeout on 2 cores; run without -race", n)
				}
				order := make([]int, n)
				for i := range order {
					order[i] = i
				}
				if random {
					rand.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
				}
				start := time.Now()
				c, names := gossipCluster(t, order, maxLinks)
				started := time.Since(start)
				took, st := waitMesh(t, c, names, maxLinks, 60*time.Second)
				for _, a := range names {
					for _, l := range c.nodes[a].Links() {
						if c.leafs[a] && c.leafs[l.Peer] {
							t.Errorf("leaves %s and %s are linked", a, l.Peer)
						}
					}
				}
				t.Logf("%d nodes: started in %v, every pair reachable %v later; max degree %d (bound %d), mean %.1f, diameter %d hops",
					n, started.Round(time.Millisecond), took.Round(time.Millisecond), st.maxDegree, maxLinks, st.meanDegree, st.diameter)
			})
		}
	}
}

// The same on QUIC links: the 16-node QUIC run left 4 nodes
// isolated.
func TestDiscoveryBuildsConnectedMeshOnQUIC(t *testing.T) {
	if testing.Short() {
		t.Skip("16 QUIC nodes")
	}
	const n, maxLinks = 16, 8
	order := rand.Perm(n)
	c, names := gossipClusterOn(t, true, order, maxLinks)
	took, st := waitMesh(t, c, names, maxLinks, 60*time.Second)
	t.Logf("%d QUIC nodes: every pair reachable %v after the last start; max degree %d, mean %.1f, diameter %d",
		n, took.Round(time.Millisecond), st.maxDegree, st.meanDegree, st.diameter)
}

func TestDiscoveryHealsPartition(t *testing.T) {
	n, maxLinks := 10, 8
	if !testing.Short() {
		n = 30
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	c, names := gossipCluster(t, order, maxLinks)
	waitMesh(t, c, names, maxLinks, 60*time.Second)
	left, right := names[:n/2], names[n/2:]
	for _, a := range left {
		for _, b := range right {
			c.memNet.Cut(a, b)
		}
	}
	// Gossip (on loopback) still sees everyone; each half must stay
	// connected on its own.
	waitMesh(t, c, left, maxLinks, 60*time.Second)
	waitMesh(t, c, right, maxLinks, 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, _ := c.nodes[left[0]].Peer(right[0])
		if !p.Reachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still reaches %s across the cut", left[0], right[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Stay cut long enough for repair dials across to fail and back off.
	cutFor := 5 * time.Second
	if testing.Short() {
		cutFor = 2 * time.Second
	}
	time.Sleep(cutFor)
	for _, a := range left {
		for _, b := range right {
			c.memNet.Heal(a, b)
		}
	}
	took, st := waitMesh(t, c, names, maxLinks, 60*time.Second)
	t.Logf("healed in %v: max degree %d, mean %.1f, diameter %d", took.Round(time.Millisecond), st.maxDegree, st.meanDegree, st.diameter)
}

func TestDiscoveryChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("churn waves take a minute")
	}
	const n, maxLinks, waves = 30, 8, 3
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	c, names := gossipCluster(t, order, maxLinks)
	waitMesh(t, c, names, maxLinks, 60*time.Second)
	// Count link changes on the nodes that stay up.
	changes := make(chan struct{}, 1<<16)
	stay := names[n/10*waves:]
	for _, name := range stay {
		events, cancel, err := c.nodes[name].Subscribe(1024)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		go func() {
			for ev := range events {
				if ev.Kind == LinkUp || ev.Kind == LinkDown {
					select {
					case changes <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	start := time.Now()
	seed := c.nodes[names[len(names)-1]].Status().GossipAddr
	for w := range waves {
		victims := names[w*n/10 : (w+1)*n/10]
		for _, v := range victims {
			c.nodes[v].Close()
			c.memNet.Kill(v)
			delete(c.nodes, v)
		}
		rest := names[(w+1)*n/10:]
		sort.Strings(rest)
		waitMesh(t, c, append(append([]string{}, names[:w*n/10]...), rest...), maxLinks, 60*time.Second)
		c.tweak = func(cfg *Config) {
			cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: maxLinks, TargetLinks: 4, Interval: time.Second, Join: []string{seed}}
		}
		for _, v := range victims {
			c.add(v)
		}
		took, st := waitMesh(t, c, names, maxLinks, 60*time.Second)
		t.Logf("wave %d: %d nodes restarted, every pair reachable after %v; max degree %d, diameter %d", w+1, len(victims), took.Round(time.Millisecond), st.maxDegree, st.diameter)
	}
	t.Logf("link changes per surviving node: %.1f per wave (%d waves in %v)",
		float64(len(changes))/float64(len(stay))/waves, waves, time.Since(start).Round(time.Millisecond))
	// Then a quiet spell: hysteresis means links stop changing.
	for len(changes) > 0 {
		<-changes
	}
	before := discoveryCounts(t, c, names)
	const quiet = 20 * time.Second
	time.Sleep(quiet)
	t.Logf("link changes per node per minute once settled: %.2f; discovery's decisions meanwhile: %v",
		float64(len(changes))/float64(len(stay))/quiet.Minutes(), diffCounts(discoveryCounts(t, c, names), before))
}

// Static links are kept on top of the policy: neither counted toward the
// bound nor closed when gossip links fill it.
func TestDiscoveryKeepsStaticLinks(t *testing.T) {
	c := newCluster(t, false)
	for _, s := range []string{"s1", "s2", "s3"} {
		c.add(s)
	}
	var seed string
	c.tweak = func(cfg *Config) {
		// A bound of 2 lets the three gossip nodes form a line; a holds
		// three static links on top of it.
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), TargetLinks: 1, MaxLinks: 2}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		} else {
			cfg.StaticLinks = []string{"s1", "s2", "s3"}
		}
	}
	a := c.add("a")
	seed = a.Status().GossipAddr
	c.add("g1")
	c.add("g2")
	c.waitConverged()
	// Give the policy a few runs at its bound, then check.
	for range 3 {
		a.disco.step(time.Now())
	}
	for _, s := range []string{"s1", "s2", "s3"} {
		if a.link(s) == nil {
			t.Errorf("a lost its static link to %s", s)
		}
	}
}

// Discovery counts the links it makes and closes by reason: every link of
// a gossip mesh was dialled by discovery and counted once proven, and a
// node above its maximum counts the links it closes.
func TestDiscoveryCountsLinksByReason(t *testing.T) {
	c, names := gossipCluster(t, []int{0, 1, 2, 3, 4}, 8)
	waitMesh(t, c, names, 8, 60*time.Second)
	// A link is counted once its dialler saw the certificate proven, which
	// may come a moment after both ends list it.
	count := func() (float64, int) {
		links := map[[2]string]bool{}
		added := 0.0
		for _, a := range names {
			for _, l := range c.nodes[a].Links() {
				links[[2]string{min(a, l.Peer), max(a, l.Peer)}] = true
			}
			for _, why := range []string{"target", "long", "repair", "replace"} {
				added += metricValue(t, c.nodes[a], "circuitmesh_discovery_links_added_total", "reason", why)
			}
		}
		return added, len(links)
	}
	deadline := time.Now().Add(30 * time.Second)
	for added, n := count(); added < float64(n); added, n = count() {
		if time.Now().After(deadline) {
			t.Fatalf("discovery counted %v links added, the mesh has %d", added, n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A node with a bound of 1 to which two nodes link (honouring none of
	// their static claims).
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 1, TargetLinks: 1, Interval: time.Second, StaticInLinks: -1}
	}
	hub := c.add("hub")
	c.tweak = nil
	c.link("x1", "hub")
	c.link("x2", "hub")
	waitFor(t, "hub to close a link above its maximum", 30*time.Second, func() bool {
		return metricValue(t, hub, "circuitmesh_discovery_links_dropped_total", "reason", "max") >= 1
	})
	if v := metricValue(t, c.nodes["x1"], "circuitmesh_discovery_links_dropped_total", "reason", "max"); v != -1 {
		t.Errorf("a node without gossip exports discovery metrics (%v)", v)
	}
}

// discoveryCounts sums the discovery counters of the nodes by metric and
// reason.
func discoveryCounts(t *testing.T, c *cluster, names []string) map[string]float64 {
	out := map[string]float64{}
	for _, a := range names {
		for _, why := range []string{"target", "long", "repair", "replace"} {
			out["added "+why] += metricValue(t, c.nodes[a], "circuitmesh_discovery_links_added_total", "reason", why)
		}
		for _, why := range []string{"max", "replace", "gone"} {
			out["dropped "+why] += metricValue(t, c.nodes[a], "circuitmesh_discovery_links_dropped_total", "reason", why)
		}
	}
	return out
}

func diffCounts(after, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// A node at its maximum keeps the link that carries a circuit and closes
// the idle newcomer: linking to a full node cannot break circuits. (The
// hub honours no static claims here: a and b link to it as static links.)
func TestFullNodeClosesIdleNewcomerNotBusyLink(t *testing.T) {
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 1, TargetLinks: 1, Interval: time.Second, StaticInLinks: -1}
	}
	hub := c.add("hub")
	c.tweak = nil
	// "a" sorts before "b": without the circuit, a's link would go first.
	c.link("a", "hub")
	c.waitRoute("a", "hub", 1)
	conn, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "hub", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	since := hub.link("a").Established()
	c.link("b", "hub")
	waitFor(t, "hub to close a link above its maximum", 30*time.Second, func() bool {
		return metricValue(t, hub, "circuitmesh_discovery_links_dropped_total", "reason", "max") >= 1
	})
	if l := hub.link("a"); l == nil || !l.Established().Equal(since) {
		t.Fatal("hub closed the link carrying a circuit")
	}
	msg := []byte("still here")
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != string(msg) {
		t.Fatalf("circuit after the drop: %q, %v", got, err)
	}
}

// fullHub starts a gossip node "hub" with a maximum of one link and a
// gossip node "g" that fills it, on QUIC, and waits until they are linked.
func fullHub(t *testing.T, tweak func(*DiscoveryConfig)) (*cluster, *Node) {
	t.Helper()
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 1, TargetLinks: 1, Interval: time.Second, JoinInterval: 2 * time.Second}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		} else if tweak != nil {
			tweak(&cfg.Discovery)
		}
	}
	hub := c.add("hub")
	seed = hub.Status().GossipAddr
	c.add("g")
	c.tweak = nil
	waitFor(t, "the gossip link hub-g", 60*time.Second, func() bool { return hub.link("g") != nil })
	return c, hub
}

// A node's static link to a gossip node at its maximum stays up: the hub
// keeps the link its dialler keeps as static on top of its own maximum,
// and keeps its gossip link too.
func TestStaticLinkToFullGossipNodeStaysUp(t *testing.T) {
	c, hub := fullHub(t, nil)
	c.link("a", "hub") // a keeps a static link to hub; a has no gossip
	waitFor(t, "hub to see a's link", 30*time.Second, func() bool { return hub.link("a") != nil })
	al := hub.link("a")
	// The policy at its bound, run a few times (it also runs by itself).
	for range 3 {
		hub.disco.step(time.Now())
	}
	if !stillUp(hub, al) {
		t.Fatal("hub closed a's static link")
	}
	// (A link being settled as a duplicate is gone from the table for a
	// moment, hence the wait; the counter below says nothing was closed.)
	waitFor(t, "hub's gossip link to g", 30*time.Second, func() bool { return hub.link("g") != nil })
	if v := metricValue(t, hub, "circuitmesh_discovery_links_dropped_total", "reason", "max"); v > 0 {
		t.Fatalf("hub closed %v links for its maximum", v)
	}
}

// Claiming "static" costs a peer nothing, so a full node honours a bounded
// number of claims: peers that all link to it as static cannot push it
// past MaxLinks plus StaticInLinks, cannot displace the claims it already
// honours, and are told why at WARN, once a minute.
func TestPeersClaimingStaticCannotPushFullNodePastBound(t *testing.T) {
	const maxLinks, staticIn = 1, 2
	c, hub := fullHub(t, func(d *DiscoveryConfig) { d.StaticInLinks = staticIn })
	c.link("s1", "hub")
	c.link("s2", "hub")
	waitFor(t, "hub to see s1 and s2", 30*time.Second, func() bool { return hub.link("s1") != nil && hub.link("s2") != nil })
	s1, s2 := hub.link("s1"), hub.link("s2")

	bound := maxLinks + staticIn
	// Hub refuses the attackers' links when they come up: a sampler never
	// sees it above its bound while x1 is refused again and again.
	sampler := sampleLinks(func() []*Node { return []*Node{hub} }, bound)
	defer sampler.Stop()

	// Each attacker keeps a static link to hub from its start, redialling
	// it, claiming static. (Node.Link would give up when hub refuses the
	// first dial before the dialler saw the link up.)
	var x1log syncBuf
	c.tweak = func(cfg *Config) {
		cfg.StaticLinks = []string{hub.Addr().String()}
		if cfg.Name == "x1" {
			cfg.Logger = slog.New(slog.NewTextHandler(&x1log, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
	}
	x1 := c.add("x1")
	x1events, stop, err := x1.Subscribe(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, x := range []string{"x2", "x3", "x4"} {
		c.add(x)
	}
	c.tweak = nil

	// x1 is closed again and again; it says why once.
	downs := 0
	waitFor(t, "hub to close x1's link 3 times", 60*time.Second, func() bool {
		for {
			select {
			case ev := <-x1events:
				if ev.Kind == LinkDown && ev.Peer == "hub" {
					downs++
				}
				continue
			default:
			}
			return downs >= 3
		}
	})
	if worst, overshot := sampler.Stop(); len(overshot) > 0 {
		t.Fatalf("hub held %d links, bound %d+%d:\n%s", worst, maxLinks, staticIn, strings.Join(overshot, "\n"))
	}
	if !stillUp(hub, s1) || !stillUp(hub, s2) {
		t.Fatal("hub closed a static link it had honoured for a newer claimant")
	}
	waitFor(t, "hub's gossip link to g", 30*time.Second, func() bool { return hub.link("g") != nil })

	logged := x1log.String()
	if n := strings.Count(logged, "static link closed soon after it came up"); n != 1 ||
		!strings.Contains(logged, "static for their dialler already kept on top") {
		t.Fatalf("x1 logged %d WARN lines for %d closures of its static link, want 1 with the reason:\n%s", n, downs, logged)
	}
}

// stillUp reports whether l is n's link to its peer and not closed (a
// closed link stays in the node's table a moment longer).
func stillUp(n *Node, l links.Link) bool {
	if n.link(l.Peer()) != l {
		return false
	}
	select {
	case <-l.Done():
		return false
	default:
		return true
	}
}

// A link the peer refuses at its maximum never reaches the dialler's
// routing or its subscribers: routing hears of a link discovery dialled
// once the peer's first routing message shows it was admitted. Before,
// every refused link (most links during a mass join) made the dialler
// send the peer its whole routing table and publish a link up and down.
func TestRefusedLinkNeverReachesDiallersRouting(t *testing.T) {
	c, hub := fullHub(t, nil)
	var jlog syncBuf
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), MaxLinks: 1, TargetLinks: 1,
			Interval: time.Second, Join: []string{hub.Status().GossipAddr}}
		cfg.Logger = slog.New(slog.NewTextHandler(&jlog, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	j := c.add("j")
	c.tweak = nil
	var mu sync.Mutex
	var seen []string
	stop, err := j.SubscribeFunc(func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Kind == LinkUp || ev.Kind == LinkDown {
			seen = append(seen, fmt.Sprintf("%v %s", ev.Kind, ev.Peer))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitFor(t, "j to be refused by hub", 60*time.Second, func() bool {
		return strings.Contains(jlog.String(), "member=hub")
	})
	if st := j.RoutingStats(); st.MessagesOut > 0 || st.UpdatesOut > 0 {
		t.Fatalf("j, refused by every member, sent %d routing messages (%d updates) over links never admitted", st.MessagesOut, st.UpdatesOut)
	}
	if p, ok := j.Peer("hub"); ok && p.Reachable {
		t.Fatalf("j routes to hub over a refused link: %+v", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 0 {
		t.Fatalf("j published link events for links never admitted: %v", seen)
	}
}
