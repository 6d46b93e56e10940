package main

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/node"
)

// Daemons named as a StatefulSet names its pods join by DNS (the name
// localhost, resolved by the system resolver, stands for the headless
// Service) and link by themselves: every daemon reaches every other and
// none holds more than --max-links links.
func TestE2EDaemonsJoinByDNSAndStayWithinMaxLinks(t *testing.T) {
	const n, maxLinks = 5, 3
	l := newLab(t, "e2e")
	// The first daemon is the seed; the others find it by the name and
	// its gossip port. Every daemon binds a port the kernel picks.
	var ds []*daemon
	var seedPort string
	for i := range n {
		name := fmt.Sprintf("circuitmesh-%d", i)
		join := []string{}
		if i > 0 {
			join = []string{"--join", "dns:localhost:" + seedPort}
		}
		ds = append(ds, l.startWith([]string{"CIRCUITMESH_GOSSIP_KEY=MDEyMzQ1Njc4OWFiY2RlZg=="}, name, "",
			append([]string{"--gossip", "127.0.0.1:0",
				"--target-links", "2", "--max-links", fmt.Sprint(maxLinks)}, join...)...))
		if i == 0 {
			_, seedPort, _ = net.SplitHostPort(ds[0].gossipAddr(t))
		}
	}
	start := time.Now()
	deadline := start.Add(90 * time.Second)
	for {
		bad := ""
		for _, d := range ds {
			var ps []node.PeerInfo
			var ls []node.LinkInfo
			if err := d.client().Get(context.Background(), admin.PathPeers, nil, &ps); err != nil {
				t.Fatal(err)
			}
			if err := d.client().Get(context.Background(), admin.PathLinks, nil, &ls); err != nil {
				t.Fatal(err)
			}
			reach := 0
			for _, p := range ps {
				if p.Reachable {
					reach++
				}
			}
			if reach < n-1 || len(ls) > maxLinks {
				bad = fmt.Sprintf("%s reaches %d of %d others with %d links (bound %d)", d.name, reach, n-1, len(ls), maxLinks)
				break
			}
		}
		if bad == "" {
			t.Logf("%d daemons: every pair reachable within the bound %v after the last start", n, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
