package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// linkPairs lists a graph's links as "a-b".
func linkPairs(g Graph) string {
	var s []string
	for _, l := range g.Links {
		s = append(s, l.A+"-"+l.B)
	}
	return strings.Join(s, " ")
}

func nodeNames(g Graph) string {
	var s []string
	for _, n := range g.Nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, " ")
}

// waitTopology gathers from's topology until ok accepts it.
func waitTopology(t *testing.T, from *Node, opt TopologyOptions, what string, ok func(Graph) bool) Graph {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, err := from.Topology(ctxT(t, 20*time.Second), opt)
		if err != nil {
			t.Fatal(err)
		}
		if ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("topology from %s never showed %s: nodes %q, links %q, unreachable %+v",
				from.Name(), what, nodeNames(g), linkPairs(g), g.Unreachable)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTopologyGathersEveryNodeOverQUIC(t *testing.T) {
	c := newCluster(t, true)
	c.leafs["e"] = true
	// a pins its side of a-b: the graph keeps the worse of the two reports.
	c.tweak = func(cfg *Config) {
		if cfg.Name == "a" {
			cfg.LinkCosts = map[string]uint32{"b": 50000}
		}
	}
	c.build("a-b", "b-c", "b-d", "c-d", "e-d")
	serve(t, c.nodes["d"], "web", echoHandler)
	c.waitConverged()
	// Wait until every node sees all its links (the far end of a link may
	// report it a moment after the near end).
	g := waitTopology(t, c.nodes["a"], TopologyOptions{}, "every link", func(g Graph) bool {
		return linkPairs(g) == "a-b b-c b-d c-d d-e" && len(g.Unreachable) == 0
	})
	if g.Origin != "a" || nodeNames(g) != "a b c d e" {
		t.Fatalf("origin %q, nodes %q", g.Origin, nodeNames(g))
	}
	for _, n := range g.Nodes {
		wantRole := "router"
		if n.Name == "e" {
			wantRole = "leaf"
		}
		if n.Role != wantRole || n.Version != Build().Version || n.Mesh != "test" {
			t.Errorf("node %s: role %q version %q mesh %q", n.Name, n.Role, n.Version, n.Mesh)
		}
		if !strings.Contains(strings.Join(n.Services, ","), "echo") {
			t.Errorf("node %s does not list the echo service: %v", n.Name, n.Services)
		}
		if n.Name == "d" && !strings.Contains(strings.Join(n.Services, ","), "web") {
			t.Errorf("d does not list its web service: %v", n.Services)
		}
		// a's route (its hops depend on the measured costs).
		if (n.Name == "a") != (n.Hops == 0 && n.Cost == 0) || n.Name == "d" && n.Hops < 2 {
			t.Errorf("node %s: route of %d hops, cost %d", n.Name, n.Hops, n.Cost)
		}
	}
	if g.Links[0].Cost != 50000 {
		t.Errorf("link a-b: cost %d, want a's pinned 50000", g.Links[0].Cost)
	}
	if _, err := c.nodes["a"].Listen(InfoService); !errors.Is(err, ErrServiceInUse) {
		t.Errorf("Listen on the reserved info service: %v", err)
	}
	for _, l := range g.Links {
		if l.Cost == 0 || l.RTT <= 0 || l.Quality == "" {
			t.Errorf("link %s-%s without measured quality: %+v", l.A, l.B, l)
		}
	}
	if _, err := json.Marshal(g); err != nil {
		t.Fatal(err)
	}
}

func TestTopologyListsNodesThatDoNotAnswer(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name == "c" }
	c.build("a-b", "b-c", "c-d")
	c.waitConverged()
	g := waitTopology(t, c.nodes["a"], TopologyOptions{Timeout: 5 * time.Second}, "c not answering", func(g Graph) bool {
		return nodeNames(g) == "a b d" && linkPairs(g) == "a-b b-c c-d"
	})
	if len(g.Unreachable) != 1 || g.Unreachable[0].Name != "c" || !strings.Contains(g.Unreachable[0].Error, "no such service") {
		t.Fatalf("unreachable %+v, want c refusing the info service", g.Unreachable)
	}
	// c's links rest on its neighbours' word, and say so.
	for _, l := range g.Links {
		want := map[string]string{"a-b": "", "b-c": "b", "c-d": "d"}[l.A+"-"+l.B]
		if l.ReportedBy != want {
			t.Errorf("link %s-%s reported by %q alone, want %q", l.A, l.B, l.ReportedBy, want)
		}
	}

	// A node that goes away is listed as unreachable (or dropped once
	// routing forgot it), and its links disappear.
	c.nodes["d"].Close()
	waitTopology(t, c.nodes["a"], TopologyOptions{Timeout: 2 * time.Second}, "d gone", func(g Graph) bool {
		return nodeNames(g) == "a b" && linkPairs(g) == "a-b b-c"
	})
}

func TestLinkQualityClasses(t *testing.T) {
	for _, tc := range []struct {
		rtt  time.Duration
		loss float64
		want string
	}{
		{time.Millisecond, 0, "good"}, {49 * time.Millisecond, 0.009, "good"},
		{50 * time.Millisecond, 0, "fair"}, {time.Millisecond, 0.01, "fair"},
		{250 * time.Millisecond, 0, "poor"}, {time.Millisecond, 0.05, "poor"},
	} {
		if got := LinkQuality(tc.rtt, tc.loss); got != tc.want {
			t.Errorf("LinkQuality(%v, %v) = %s, want %s", tc.rtt, tc.loss, got, tc.want)
		}
	}
}

func TestInfoAnswerStaysWithinItsBound(t *testing.T) {
	// At its bounds, with the longest names (node names and service
	// names of 63 bytes), an answer fits whole.
	info := NodeInfo{Name: strings.Repeat("n", identity.MaxNameLen), Role: "router", Version: "v1"}
	for i := range MaxInfoLinks {
		info.Links = append(info.Links, InfoLink{Peer: fmt.Sprintf("%063d", i), Role: "router", RTT: time.Millisecond, Cost: 100})
	}
	for i := range MaxInfoServices {
		info.Services = append(info.Services, fmt.Sprintf("%063d", i))
	}
	b := encodeInfo(info)
	if len(b) > MaxInfoSize {
		t.Fatalf("answer of %d bytes, bound %d", len(b), MaxInfoSize)
	}
	got, err := DecodeInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != info.Name || got.ServicesTruncated || got.LinksTruncated || len(got.Links) != MaxInfoLinks || len(got.Services) != MaxInfoServices {
		t.Fatalf("decoded %q with %d links, %d services, truncated %v %v", got.Name, len(got.Links), len(got.Services), got.LinksTruncated, got.ServicesTruncated)
	}
	// Beyond them, encodeInfo drops services, then links, until it fits.
	for i := MaxInfoLinks; i < 4*MaxInfoLinks; i++ {
		info.Links = append(info.Links, InfoLink{Peer: fmt.Sprintf("%063d", i), Role: "router", RTT: time.Millisecond, Cost: 100})
	}
	b = encodeInfo(info)
	if len(b) > MaxInfoSize {
		t.Fatalf("answer of %d bytes, bound %d", len(b), MaxInfoSize)
	}
	if got, err = DecodeInfo(b); err != nil || !got.ServicesTruncated || !got.LinksTruncated || len(got.Links) == 0 {
		t.Fatalf("decoded %q with %d links, %d services, truncated %v %v: %v", got.Name, len(got.Links), len(got.Services), got.LinksTruncated, got.ServicesTruncated, err)
	}
	if _, err := DecodeInfo(append(b, make([]byte, MaxInfoSize)...)); !errors.Is(err, ErrBadInfo) {
		t.Fatalf("oversized answer: %v", err)
	}
}

func TestDisabledInfoServiceRefusesLikeAMissingService(t *testing.T) {
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name == "b" }
	c.build("a-b")
	c.waitConverged()
	if _, err := c.nodes["a"].Info(ctxT(t, 10*time.Second), "b"); !errors.Is(err, circuit.ErrNoService) {
		t.Fatalf("info of b with the service off: %v, want no such service", err)
	}
	info, err := c.nodes["b"].Info(ctxT(t, 10*time.Second), "a")
	if err != nil || info.Name != "a" || len(info.Links) != 1 || info.Links[0].Peer != "b" {
		t.Fatalf("info of a: %+v, %v", info, err)
	}
}

func FuzzDecodeInfo(f *testing.F) {
	f.Add(encodeInfo(NodeInfo{Name: "a", Role: "router", Version: "(devel)", Links: []InfoLink{{Peer: "b", Cost: 10}}, Services: []string{"echo"}}))
	f.Add([]byte(`{"name":"a","links":[{"peer":"","loss":2}]}`))
	f.Add([]byte(`{"name":"a"} {}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"name":"a","links":null,"services":["x"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := DecodeInfo(b)
		if err != nil {
			if !errors.Is(err, ErrBadInfo) {
				t.Fatalf("error %v does not unwrap to ErrBadInfo", err)
			}
			return
		}
		if info.Name == "" || len(info.Links) > MaxInfoLinks || len(info.Services) > MaxInfoServices || info.Links == nil {
			t.Fatalf("accepted out-of-bounds info %+v", info)
		}
		again, err := DecodeInfo(encodeInfo(info))
		if err != nil || again.Name != info.Name {
			t.Fatalf("re-encoded info does not decode the same: %+v %v", again, err)
		}
	})
}

// A node whose info service lies (an oversized answer, an answer for
// another name) or never answers is listed as unreachable with the reason;
// the graph still comes back, within the per-node timeout.
func TestTopologySurvivesBadInfoAnswers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name != "a" }
	c.build("a-huge", "a-liar", "a-mute")
	for _, n := range []string{"huge", "liar", "mute"} {
		c.waitRoute("a", n, 1)
	}
	serve(t, c.nodes["huge"], InfoService, func(c io.ReadWriteCloser) {
		c.Write([]byte(`{"name":"huge","services":["` + strings.Repeat("x", MaxInfoSize) + `"]}`))
	})
	serve(t, c.nodes["liar"], InfoService, func(c io.ReadWriteCloser) {
		c.Write(encodeInfo(NodeInfo{Name: "someone-else", Role: "router"}))
	})
	mute := make(chan struct{})
	serve(t, c.nodes["mute"], InfoService, func(c io.ReadWriteCloser) { <-mute })
	defer close(mute)

	// The per-node timeout must let an honest answer of MaxInfoSize and
	// its circuit's handshake through on a starved machine, or huge's
	// answer fails as a timeout too: the mute node costs the test that long.
	g, err := c.nodes["a"].Topology(ctxT(t, patience), TopologyOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if nodeNames(g) != "a" || linkPairs(g) != "a-huge a-liar a-mute" || len(g.Unreachable) != 3 {
		t.Fatalf("nodes %q, links %q, unreachable %+v", nodeNames(g), linkPairs(g), g.Unreachable)
	}
	for i, want := range []string{"more than 65536", `answered for "someone-else"`, "timeout"} {
		if u := g.Unreachable[i]; !strings.Contains(u.Error, want) {
			t.Errorf("%s: %q, want it to say %q", u.Name, u.Error, want)
		}
	}
}

func TestGraphLinksKeepsWhatTheOtherEndDoesNotDeny(t *testing.T) {
	link := func(peer string, cost uint32) InfoLink {
		return InfoLink{Peer: peer, Role: "router", RTT: time.Millisecond, Cost: cost}
	}
	answers := map[string]NodeInfo{
		"a": {Name: "a", Links: []InfoLink{link("b", 10), link("c", 10), link("x", 10), link("a", 10), link("n", 10)}},
		"b": {Name: "b", Links: []InfoLink{link("a", 30)}},
		"c": {Name: "c", Links: []InfoLink{}}, // answered in full without a
		"t": {Name: "t", Links: []InfoLink{link("a", 10)}},
		"u": {Name: "u", Links: []InfoLink{link("t", 10)}, LinksTruncated: true},
	}
	// x and n are known (routing or gossip) but did not answer; a's answer
	// does not list t, u's list was cut short.
	known := map[string]bool{"a": true, "b": true, "c": true, "x": true, "t": true, "u": true}
	var got []string
	for _, l := range graphLinks(answers, known) {
		got = append(got, fmt.Sprintf("%s-%s:%d:%s", l.A, l.B, l.Cost, l.ReportedBy))
	}
	slices.Sort(got)
	want := []string{"a-b:30:", "a-x:10:a"}
	if !slices.Equal(got, want) {
		t.Fatalf("links %v, want %v", got, want)
	}
	// t's link to u is not in u's truncated list: it stays, as t's word.
	answers["u"] = NodeInfo{Name: "u", Links: []InfoLink{}, LinksTruncated: true}
	answers["t"] = NodeInfo{Name: "t", Links: []InfoLink{link("u", 10)}}
	got = nil
	for _, l := range graphLinks(answers, known) {
		got = append(got, fmt.Sprintf("%s-%s:%s", l.A, l.B, l.ReportedBy))
	}
	slices.Sort(got)
	if want := []string{"a-b:", "a-x:a", "t-u:t"}; !slices.Equal(got, want) {
		t.Fatalf("links %v, want %v", got, want)
	}
}
