package node

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// serveLyingInfo has n answer its info service with links of its own
// choosing: what a node with a valid certificate can send.
func serveLyingInfo(t *testing.T, n *Node, links []InfoLink) {
	t.Helper()
	lis, err := n.Listen(InfoService)
	if err != nil {
		t.Fatal(err)
	}
	lie := encodeInfo(NodeInfo{Name: n.Name(), Mesh: "test", Role: "router", Version: Build().Version,
		Links: links, Services: []string{InfoService}})
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

// A node with a valid certificate answers _info with links it does not
// have: to honest nodes it never linked to, and to names no certificate
// carries. The operator's picture of the mesh (Topology: `circuitmesh
// graph`, the mesh page) should draw a link between two nodes only when
// the other end reports it too, and should not list names that neither
// routing nor any honest node knows.
func TestRedteamInfoLiesDrawLinksAndNodes(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name == "m" }
	c.build("a-b", "b-c", "b-m")
	c.waitConverged()
	var lies []InfoLink
	lies = append(lies, InfoLink{Peer: "a", Role: "router", RTT: 100 * time.Microsecond, Cost: 10, Streams: 0},
		InfoLink{Peer: "c", Role: "router", RTT: 100 * time.Microsecond, Cost: 10, Streams: 0})
	for i := range 200 {
		lies = append(lies, InfoLink{Peer: fmt.Sprintf("ghost-%03d", i), Role: "router", RTT: time.Millisecond, Cost: 100})
	}
	serveLyingInfo(t, c.nodes["m"], lies)

	g := waitTopology(t, c.nodes["a"], TopologyOptions{}, "m's answer", func(g Graph) bool {
		return strings.Contains(" "+nodeNames(g)+" ", " m ")
	})
	var forged []string
	for _, l := range g.Links {
		if (l.A == "m" || l.B == "m") && l.A != "b" && l.B != "b" {
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
}
