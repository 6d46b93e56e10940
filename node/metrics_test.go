package node

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// metricValue is the value of the counter or gauge name{label=value} of
// n (the sample count for a histogram), or -1 when n does not export it.
func metricValue(t *testing.T, n *Node, name, label, value string) float64 {
	t.Helper()
	fams, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				match = match || lp.GetName() == label && lp.GetValue() == value
			}
			if !match {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// A relay's byte counters move while its circuit carries data, not only
// when the circuit ends.
func TestRelayBytesCountedWhileTheCircuitRuns(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	r := c.nodes["r"]
	conn, err := c.nodes["a"].Dial(ctxT(t, 10*time.Second), "b", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 256 << 10
	go conn.Write(make([]byte, size))
	if _, err := io.ReadFull(conn, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	// The echo came back through r, and the circuit is still open.
	if r.circuits.relayed() != 1 {
		t.Fatalf("r relays %d circuits, want the open one", r.circuits.relayed())
	}
	up := metricValue(t, r, "circuitmesh_relay_bytes_total", "direction", "up")
	down := metricValue(t, r, "circuitmesh_relay_bytes_total", "direction", "down")
	if up < size || down < size {
		t.Fatalf("while the circuit is open r counts %v bytes up and %v down, want at least %d each way", up, down, size)
	}
	conn.Close()
	waitFor(t, "r's relay to end", 20*time.Second, func() bool { return r.circuits.relayed() == 0 })
	if after := metricValue(t, r, "circuitmesh_relay_bytes_total", "direction", "up"); after < up {
		t.Fatalf("relay bytes up went back from %v to %v when the circuit ended", up, after)
	}
}

// Dials are timed by result, and links' RTT is sampled into a histogram.
func TestOpenTimeAndLinkRTTHistograms(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a := c.nodes["a"]
	if err := roundTrip(t, a, "b", EchoService, []byte("timed")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Dial(ctxT(t, 10*time.Second), "b", "missing"); !errors.Is(err, circuit.ErrNoService) {
		t.Fatalf("dial of a missing service: %v", err)
	}
	if n := metricValue(t, a, "circuitmesh_circuit_open_seconds", "result", "accepted"); n != 1 {
		t.Errorf("%v accepted opens timed, want 1", n)
	}
	if n := metricValue(t, a, "circuitmesh_circuit_open_seconds", "result", "no_such_service"); n != 1 {
		t.Errorf("%v refused opens timed, want 1", n)
	}
	waitFor(t, "a link RTT sample", 20*time.Second, func() bool {
		return metricValue(t, a, "circuitmesh_link_rtt_sampled_seconds", "", "") > 0
	})
}

// labelValues are the values of label over the series of metric name
// that n exports, sorted.
func labelValues(t *testing.T, n *Node, name, label string) []string {
	t.Helper()
	fams, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// gossipMesh starts the nodes names with gossip discovery on one key,
// every node after the first joining the first, and no static links, and
// waits for the mesh to converge. Nodes added later join too.
func gossipMesh(t *testing.T, names ...string) *cluster {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	for i, name := range names {
		n := c.add(name)
		if i == 0 {
			seed = n.Status().GossipAddr
		}
	}
	c.waitConverged()
	return c
}

// The gauges and counters read from the node's tables follow the mesh:
// gossip members, routes, route updates received and a gauge set per
// link come with a node and go with it.
func TestStateMetricsFollowTheMesh(t *testing.T) {
	c := gossipMesh(t, "a", "b", "c")
	a := c.nodes["a"]
	value := func(name, label, v string) float64 { return metricValue(t, a, name, label, v) }
	// linkGauges reports whether a exports each per-link gauge for
	// exactly the peers of its live links.
	linkGauges := func() bool {
		var peers []string
		for _, l := range a.Links() {
			peers = append(peers, l.Peer)
		}
		slices.Sort(peers)
		for _, name := range []string{"circuitmesh_link_rtt_seconds", "circuitmesh_link_loss_ratio", "circuitmesh_link_cost", "circuitmesh_link_streams"} {
			if !slices.Equal(labelValues(t, a, name, "peer"), peers) {
				return false
			}
		}
		return len(peers) > 0
	}
	waitFor(t, "a's metrics of three members, two routes and its links", 20*time.Second, func() bool {
		return value("circuitmesh_gossip_members", "", "") == 3 && value("circuitmesh_routes", "", "") == 2 &&
			value("circuitmesh_peers_reachable", "", "") == 2 && linkGauges()
	})
	updates := value("circuitmesh_routing_updates_total", "direction", "in")
	if updates <= 0 || value("circuitmesh_routing_messages_total", "direction", "in") <= 0 {
		t.Fatalf("a counts %v route updates received", updates)
	}

	d := c.add("d")
	waitFor(t, "a's metrics to show d", 20*time.Second, func() bool {
		return value("circuitmesh_gossip_members", "", "") == 4 && value("circuitmesh_routes", "", "") == 3 &&
			value("circuitmesh_peers_reachable", "", "") == 3 && linkGauges()
	})
	if now := value("circuitmesh_routing_updates_total", "direction", "in"); now <= updates {
		t.Fatalf("route updates received stayed at %v while d joined", now)
	}
	d.Close()
	waitFor(t, "every node's metrics to drop d", 20*time.Second, func() bool {
		for _, n := range []*Node{a, c.nodes["b"], c.nodes["c"]} {
			for _, name := range []string{"circuitmesh_link_rtt_seconds", "circuitmesh_link_loss_ratio", "circuitmesh_link_cost", "circuitmesh_link_streams"} {
				if slices.Contains(labelValues(t, n, name, "peer"), "d") {
					return false
				}
			}
		}
		return value("circuitmesh_gossip_members", "", "") == 3 && value("circuitmesh_peers_reachable", "", "") == 2 && linkGauges()
	})

	// The build: version and commit (as Build reads them) and Go's version.
	b := Build()
	for label, want := range map[string]string{"version": b.Version, "commit": b.Commit, "go_version": runtime.Version()} {
		if got := labelValues(t, a, "circuitmesh_build_info", label); len(got) != 1 || got[0] != want {
			t.Errorf("circuitmesh_build_info{%s} is %q, want %q", label, got, want)
		}
	}
	if v := value("circuitmesh_build_info", "", ""); v != 1 {
		t.Errorf("circuitmesh_build_info is %v, want 1", v)
	}
}

// metricRows finds the metric each row of docs/METRICS.md's tables names.
var metricRows = regexp.MustCompile("(?m)^\\| `(circuitmesh_[a-z_]+)` \\|")

// Every metric docs/METRICS.md lists is one a node with gossip and a link
// exports: the list names no metric that is gone or misspelt.
func TestEveryDocumentedMetricIsExported(t *testing.T) {
	doc, err := os.ReadFile("../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	a := gossipMesh(t, "a", "b").nodes["a"]
	fams, err := a.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}
	documented := metricRows.FindAllStringSubmatch(string(doc), -1)
	if len(documented) < 20 {
		t.Fatalf("docs/METRICS.md lists %d metrics", len(documented))
	}
	for _, m := range documented {
		if !exported[m[1]] {
			t.Errorf("docs/METRICS.md lists %s, which a node does not export", m[1])
		}
	}
}
