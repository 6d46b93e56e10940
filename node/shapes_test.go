package node

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/routing"
)

// Larger shapes run on in-memory links: the same node code, no sockets.

func gridEdges(w, h int) []string {
	var edges []string
	name := func(x, y int) string { return fmt.Sprintf("g%d%d", x, y) }
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if x+1 < w {
				edges = append(edges, name(x, y)+"-"+name(x+1, y))
			}
			if y+1 < h {
				edges = append(edges, name(x, y)+"-"+name(x, y+1))
			}
		}
	}
	return edges
}

func TestGridCircuitsCrossManyRelays(t *testing.T) {
	c := newCluster(t, false)
	// Every link costs the same here, so a path two hops longer differs by
	// exactly the default hysteresis margin and, when it happens to be
	// learnt first, is kept (routing is optimal within the margin per hop;
	// see package routing). This test is about circuits crossing seven
	// relays, so it asks for strict shortest paths.
	c.tweak = func(cfg *Config) { cfg.Routing.Hysteresis = uint32(routing.NoHysteresis) }
	c.build(gridEdges(5, 5)...)
	c.waitConverged()
	// Corner to corner: 8 hops, 7 relays.
	p := c.waitRoute("g00", "g44", 8)
	if p.Cost == 0 {
		t.Fatalf("route without cost: %+v", p)
	}
	serve(t, c.nodes["g44"], "svc", echoHandler)
	conn, err := c.nodes["g00"].DialWith(ctxT(t, 5*time.Second), "g44", "svc", DialOptions{RecordPath: true})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if got := len(conn.Path()); got != 9 {
		t.Fatalf("path %v has %d nodes, want 9", conn.Path(), got)
	}
	if err := roundTrip(t, c.nodes["g00"], "g44", "svc", make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	// Hop limit below the distance is refused by the relay where it ran out.
	_, err = c.nodes["g00"].DialWith(ctxT(t, 5*time.Second), "g44", "svc", DialOptions{HopLimit: 3})
	if !errors.Is(err, circuit.ErrHopLimit) {
		t.Fatalf("hop limit 3 across 7 relays: %v", err)
	}
}

func TestPartitionAndHeal(t *testing.T) {
	c := newCluster(t, false)
	// A ring of six: cutting two links splits it in two halves.
	c.build("r0-r1", "r1-r2", "r2-r3", "r3-r4", "r4-r5", "r5-r0")
	c.waitConverged()
	events, cancel, err := c.nodes["r0"].Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	c.memNet.Cut("r2", "r3")
	c.memNet.Cut("r5", "r0")
	waitEvents(t, events, map[string]bool{"peer-down r3": false, "peer-down r4": false, "peer-down r5": false})
	if _, err := c.nodes["r0"].Dial(ctxT(t, time.Second), "r4", EchoService); !errors.Is(err, circuit.ErrNoRoute) {
		t.Fatalf("dial across the partition: %v", err)
	}
	c.memNet.Heal("r2", "r3")
	c.memNet.Heal("r5", "r0")
	c.link("r2", "r3")
	c.link("r5", "r0")
	c.waitConverged()
	waitEvents(t, events, map[string]bool{"peer-up r3": false, "peer-up r4": false})
	if err := roundTrip(t, c.nodes["r0"], "r3", EchoService, []byte("healed")); err != nil {
		t.Fatal(err)
	}
}
