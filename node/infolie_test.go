package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
)

// serveLyingInfo has n answer its info service with links of its own
// choosing: what a node with a valid certificate can send.
func serveLyingInfo(t *testing.T, n *Node, links []InfoLink) {
	t.Helper()
	serveInfoAnswer(t, n, NodeInfo{Name: n.Name(), Mesh: "test", Role: "router", Version: Build().Version,
		Links: links, Services: []string{InfoService}})
}

// serveInfoAnswer has n (started with DisableInfo) answer its info
// service with info, whatever it says.
func serveInfoAnswer(t *testing.T, n *Node, info NodeInfo) {
	t.Helper()
	lis, err := n.Listen(InfoService)
	if err != nil {
		t.Fatal(err)
	}
	lie := encodeInfo(info)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.Write(lie)
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			c.Close()
		}
	}()
}

// infoLiar links a to m over QUIC, m answering no _info of its own, and
// returns them with an honest answer m could give (its services extra
// beside InfoService, a link to a).
func infoLiar(t *testing.T, services ...string) (a, m *Node, honest NodeInfo) {
	t.Helper()
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name == "m" }
	c.build("a-m")
	c.waitRoute("a", "m", 1)
	return c.nodes["a"], c.nodes["m"], NodeInfo{Name: "m", Mesh: "test", Role: "router", Version: "v1",
		Services: append([]string{InfoService}, services...),
		Links:    []InfoLink{{Peer: "a", Role: "router", RTT: time.Millisecond, Cost: 10}}}
}

// wantInfoRefused has m answer _info with lie and checks that a's Info of
// m fails with ErrBadInfo wrapping want, its error all printable.
func wantInfoRefused(t *testing.T, a, m *Node, lie NodeInfo, want error) {
	t.Helper()
	serveInfoAnswer(t, m, lie)
	got, err := a.Info(ctxT(t, 10*time.Second), "m")
	switch {
	case err == nil:
		t.Fatalf("a's Info of m returned %+v", got)
	case !errors.Is(err, ErrBadInfo) || !errors.Is(err, want):
		t.Fatalf("a's Info of m: %v, want ErrBadInfo wrapping %v", err, want)
	case strings.ContainsFunc(err.Error(), func(r rune) bool { return !unicode.IsPrint(r) }):
		t.Fatalf("a's Info of m: the error is not printable: %q", err)
	}
}

// A node with a valid certificate answers _info with links it does not
// have: to honest nodes it never linked to (a and c, whose answers do not
// list it), to a node that does not answer (d), and to names no
// certificate carries. The operator's picture of the mesh (Topology:
// `circuitmesh graph`, the mesh page) draws no link the other end's answer
// denies, marks the one it cannot check as reported by m alone, and
// neither queries nor lists names that neither routing nor gossip knows.
func TestTopologyDrawsNoLinkOrNameOnlyOneAnswerGives(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name == "m" || cfg.Name == "d" }
	c.build("a-b", "b-c", "b-m", "b-d")
	c.waitConverged()
	var lies []InfoLink
	for _, p := range []string{"a", "c", "d"} {
		lies = append(lies, InfoLink{Peer: p, Role: "router", RTT: 100 * time.Microsecond, Cost: 10})
	}
	for i := range 200 {
		lies = append(lies, InfoLink{Peer: fmt.Sprintf("ghost-%03d", i), Role: "router", RTT: time.Millisecond, Cost: 100})
	}
	serveLyingInfo(t, c.nodes["m"], lies)

	g := waitTopology(t, c.nodes["a"], TopologyOptions{}, "m's answer and b's links", func(g Graph) bool {
		return nodeNames(g) == "a b c m" && strings.Contains(" "+linkPairs(g)+" ", " b-c ")
	})
	var forged []string
	reportedBy := map[string]string{}
	for _, l := range g.Links {
		reportedBy[l.A+"-"+l.B] = l.ReportedBy
		if l.A == "a" && l.B == "m" || l.A == "c" && l.B == "m" || strings.HasPrefix(l.A, "ghost-") {
			forged = append(forged, l.A+"-"+l.B)
		}
	}
	var ghosts int
	for _, u := range g.Unreachable {
		if strings.HasPrefix(u.Name, "ghost-") {
			ghosts++
		}
	}
	if len(forged) > 0 {
		t.Errorf("the graph draws %d links only m reports (a and c never linked to m), e.g. %v", len(forged), forged[:min(len(forged), 3)])
	}
	if ghosts > 0 {
		t.Errorf("the graph lists %d names only m's answer made up (queried as nodes, shown as unreachable)", ghosts)
	}
	// Both ends confirm a-b and b-c; d does not answer, so b-d and m-d
	// rest on one end's word, and say whose; m's answer denies b-m.
	for pair, want := range map[string]string{"a-b": "", "b-c": "", "b-d": "b", "d-m": "m"} {
		if got, ok := reportedBy[pair]; !ok || got != want {
			t.Errorf("link %s: drawn %v, reported by %q only, want %q", pair, ok, got, want)
		}
	}
	if _, ok := reportedBy["b-m"]; ok {
		t.Errorf("link b-m drawn though m's full answer does not list it")
	}
	if len(g.Unreachable) != 1 || g.Unreachable[0].Name != "d" {
		t.Errorf("%d unreachable (first %+v), want d alone", len(g.Unreachable), g.Unreachable[:min(len(g.Unreachable), 1)])
	}
}
