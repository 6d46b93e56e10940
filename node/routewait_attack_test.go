package node

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// routeWaitOpens is how many opens m sends toward the lost destination.
const routeWaitOpens = 1000

// TestAttackRelayWaitsForALostRoute: m, a neighbour of relay d with a
// valid certificate, opens circuits through d to x, a node d lost a
// moment ago. d relays an open toward a destination it knows but cannot
// reach for RouteWait, in case the route comes back; the open's stream
// held no pending-open slot meanwhile and counted in no circuit limit, so
// m had d wait for as many as its link's stream credit allowed, each
// polling the router (its lock, which every relayed open takes) every
// 10 ms. Now at most MaxPendingOpensPerLink opens of a link wait for a
// route at once (MaxPendingOpens on the node), the rest are refused
// `no route` at once, and a waiting relay wakes when routing changes
// rather than polling. h, an honest neighbour of d, keeps relaying
// through d to y meanwhile.
func TestAttackRelayWaitsForALostRoute(t *testing.T) {
	c := newCluster(t, true)
	// Long enough that no wait ends by itself within the test.
	c.tweak = func(cfg *Config) { cfg.RouteWait = 10 * time.Minute }
	c.build("m-d", "h-d", "d-x", "d-y")
	c.waitRoute("h", "y", 2)
	c.waitRoute("m", "x", 2)
	m, d, h := c.nodes["m"], c.nodes["d"], c.nodes["h"]
	perLink := d.cfg.Limits.MaxPendingOpensPerLink

	// h's round trips for dur, and until one succeeded (a loaded machine
	// may take longer than dur for the first).
	honest := func(dur time.Duration) (lat []time.Duration, failed int) {
		end, last := time.Now().Add(dur), time.Now().Add(patience)
		for now := time.Now(); now.Before(end) || len(lat) == 0 && now.Before(last); now = time.Now() {
			start := time.Now()
			if err := roundTrip(t, h, "y", EchoService, []byte("h")); err != nil {
				t.Logf("h's circuit to y: %v", err)
				failed++
				continue
			}
			lat = append(lat, time.Since(start))
		}
		return lat, failed
	}
	quiet, _ := honest(2 * time.Second)

	if err := c.nodes["x"].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d to lose its route to x", patience, func() bool {
		return len(d.router.nextHops("x")) == 0
	})
	if !d.recentlyKnown("x") {
		t.Fatal("d forgot x at once; a relay toward it would not wait")
	}

	l := m.link("d")
	hdr, err := (&circuit.Open{Dest: "x", Source: "m", Service: EchoService, HopLimit: 15}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var noRoute, other atomic.Int64
	var wg sync.WaitGroup
	streams := make([]links.Stream, 0, routeWaitOpens)
	for range routeWaitOpens {
		s, err := l.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(hdr); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := circuit.ReadResult(s, 0)
			switch {
			case err == nil && res.Code == circuit.NoRoute:
				noRoute.Add(1)
			case ctx.Err() == nil:
				other.Add(1)
				t.Logf("m's open: %v %v", res, err)
			}
		}()
	}
	defer func() {
		cancel()
		for _, s := range streams {
			s.Reset(circuit.CloseCancelled)
		}
		wg.Wait()
	}()
	// All but the link's share of waits are refused at once.
	want := int64(routeWaitOpens - perLink)
	deadline := time.Now().Add(patience / 2)
	for noRoute.Load() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	refused := noRoute.Load()
	// What the opens left waiting cost the process while nothing else
	// runs in it (logged, not asserted).
	cpu0, t0 := processCPU(), time.Now()
	time.Sleep(time.Second)
	idle, idleFor := processCPU()-cpu0, time.Since(t0)
	loud, loudFailed := honest(2 * time.Second)
	t.Logf("m opened %d circuits toward x through d: %d refused `no route` within %v, %d other answers; the process then spent %v of CPU in %v with nothing but them running; h's round trips to y through d in 2 s: %d before (p99 %v), %d during (p99 %v, %d failed)",
		routeWaitOpens, refused, (patience / 2).Round(time.Second), other.Load(),
		idle.Round(time.Millisecond), idleFor.Round(time.Millisecond),
		len(quiet), p99(quiet), len(loud), p99(loud), loudFailed)
	if refused < want {
		t.Errorf("d refused %d of m's %d opens toward the lost x within %v: the rest wait for a route (want at most the link's %d waiting)",
			refused, routeWaitOpens, (patience / 2).Round(time.Second), perLink)
	}
	if len(loud) == 0 {
		t.Errorf("h's circuits through d carried nothing while m's opens waited")
	}
	if got := d.limits.routeWaitsOn("m"); got > perLink {
		t.Errorf("d holds %d of m's opens waiting for a route, more than the link's %d", got, perLink)
	}
}
