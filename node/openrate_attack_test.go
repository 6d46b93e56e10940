package node

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// refusedFlood is what a flood of opens d refuses did, and what an honest
// source's round trips to d did meanwhile.
type refusedFlood struct {
	opens     int64         // streams m opened
	noService int64         // answered "no such service": d read and checked the whole open
	beyond    int64         // answered "overloaded": refused at once beyond m's budget
	other     int64         // reset, or another answer
	elapsed   time.Duration // from the first open to the last answer
	honest    int           // h's round trips that carried their bytes
	failed    []error       // h's that did not
	cpu       time.Duration // the process's CPU during the flood
}

// floodRefusedOpens has m send, on its link to next, clear opens of hdr
// (to a service d does not have) from 8 goroutines until d answered want
// of them, the link is down or limit passed, while h makes echo round
// trips to d.
func floodRefusedOpens(t *testing.T, c *cluster, next string, hdr []byte, want int64, limit time.Duration) refusedFlood {
	t.Helper()
	m, h := c.nodes["m"], c.nodes["h"]
	l := c.mustLink("m", next)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var f refusedFlood
	var answered atomic.Int64
	var wg sync.WaitGroup
	cpu0, start := processCPU(), time.Now()
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil && answered.Load() < want {
				s, err := l.OpenStream(ctx)
				if err != nil {
					return
				}
				atomic.AddInt64(&f.opens, 1)
				_, _ = s.Write(hdr)
				_ = s.CloseWrite()
				res, err := circuit.ReadResult(s, 0)
				s.Reset(circuit.CloseCancelled)
				switch {
				case err != nil:
					atomic.AddInt64(&f.other, 1)
					continue
				case res.Code == circuit.NoService:
					atomic.AddInt64(&f.noService, 1)
				case res.Code == circuit.Overloaded:
					atomic.AddInt64(&f.beyond, 1)
				default:
					atomic.AddInt64(&f.other, 1)
				}
				answered.Add(1)
			}
		})
	}
	honestDone := make(chan struct{})
	go func() {
		defer close(honestDone)
		for ctx.Err() == nil && answered.Load() < want && m.link(next) != nil {
			if err := roundTrip(t, h, "d", EchoService, []byte("honest")); err != nil {
				f.failed = append(f.failed, err)
			} else {
				f.honest++
			}
		}
	}()
	wg.Wait()
	f.elapsed = time.Since(start)
	f.cpu = processCPU() - cpu0
	cancel()
	<-honestDone
	return f
}

// refusedBound is the most opens of one source a node may refuse in full
// over elapsed with the default budget (Limits.RefusedOpensPerSource):
// its bucket and its rate, and the opens of the source in flight between
// the check of the budget and the refusal, which the flood's 8 goroutines
// keep at 8 at most (the bound allows 128).
func refusedBound(elapsed time.Duration) int64 {
	const burst = 1024 // Limits.MaxCircuitsPerSource
	return burst + int64(elapsed.Seconds()*defaultRefusedOpens) + 2*64
}

// TestAttackRefusedOpensFlood: m, a member with a valid certificate, opens
// circuits whose header is valid but which d refuses (service "nope": no
// such service), as fast as 8 goroutines write them, until d answered
// 12,000 (or 20 s passed, or m's link went down), while h, an honest
// member, makes echo round trips to d. Before, such opens counted neither
// as circuits nor as streams ended without an open: d read and refused
// every one in full (the test's flood: 12,000 of 12,000 answered "no such
// service", m's link up), for as long as m liked. Now d refuses at most
// m's budget (Limits.RefusedOpensPerSource: 1,024 and 64 a second) in
// full and the rest at once, logging one WARN line for them, and h's
// round trips all carry their bytes.
//
// neighbour: m linked to d, the opens at hop 0; the ones refused at once
// also count against m's link's budget of streams ended without an open,
// which closes it.
//
// relayed: m and h linked to r, r to d; d counts m's opens as m's claimed
// along r, not against r's link, which stays up.
//
// forged: the same, m's opens claiming to relay for h (hop 1, path m): d
// counts them as h's claimed along m and r, so h's own circuits through r
// are never refused.
func TestAttackRefusedOpensFlood(t *testing.T) {
	const want = 12_000
	for _, tc := range []struct {
		name  string
		edges []string
		next  string
		open  circuit.Open
	}{
		{"neighbour", []string{"m-d", "h-d"}, "d", circuit.Open{Dest: "d", Source: "m", Service: "nope", HopLimit: 15}},
		{"relayed", []string{"m-r", "h-r", "r-d"}, "r", circuit.Open{Dest: "d", Source: "m", Service: "nope", HopLimit: 15}},
		{"forged", []string{"m-r", "h-r", "r-d"}, "r", circuit.Open{Dest: "d", Source: "h", Service: "nope", HopLimit: 15, Hop: 1, Path: []string{"m"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, true)
			dlog := c.captureLog("d")
			c.build(tc.edges...)
			hops := 1
			if tc.next == "r" {
				hops = 2
			}
			c.waitRoute("m", "d", hops)
			c.waitRoute("h", "d", hops)
			var rd any
			if tc.next == "r" {
				rd = c.mustLink("d", "r")
			}
			hdr, err := tc.open.AppendTo(nil)
			if err != nil {
				t.Fatal(err)
			}
			f := floodRefusedOpens(t, c, tc.next, hdr, want, 20*time.Second)
			up := c.nodes["m"].link(tc.next) != nil
			secs := f.elapsed.Seconds()
			t.Logf("m opened %d streams in %v: %d refused in full (no such service), %d at once (overloaded), %d reset or other; m's link to %s up: %v; process CPU %v (%.0f ms a second)",
				f.opens, f.elapsed.Round(time.Millisecond), f.noService, f.beyond, f.other, tc.next, up, f.cpu.Round(time.Millisecond), f.cpu.Seconds()*1000/secs)
			t.Logf("h meanwhile: %d echo round trips to d carried their bytes (%.0f a second), %d failed", f.honest, float64(f.honest)/secs, len(f.failed))
			for i, err := range f.failed {
				if i < 5 {
					t.Logf("h's round trip failed: %v", err)
				}
			}
			if most := refusedBound(f.elapsed); f.noService > most {
				t.Errorf("d refused %d of m's opens in full in %v, want at most %d (its budget)", f.noService, f.elapsed.Round(time.Millisecond), most)
			}
			if len(f.failed) > 0 {
				t.Errorf("%d of h's round trips to d failed during the flood (first: %v), want none", len(f.failed), f.failed[0])
			}
			if rd != nil && c.nodes["d"].link("r") != rd {
				t.Errorf("d's link to r, the honest relay, went down during m's flood")
			}
			// One line for the flood, with its count, not one per open.
			const line = "refusing circuit opens at once"
			if n := strings.Count(dlog.String(), line); f.beyond > 0 && n != 1 {
				t.Errorf("d logged %d lines %q for %d opens refused at once, want 1", n, line, f.beyond)
			}
			// Every open m was refused at once is on d's /metrics.
			if got := metricValue(t, c.nodes["d"], "circuitmesh_opens_refused_at_once_total", "", ""); got < float64(f.beyond) || got != float64(c.nodes["d"].RefusedOpenStats().Beyond) {
				t.Errorf("circuitmesh_opens_refused_at_once_total %v, want the %d opens d counted, at least the %d m was refused at once", got, c.nodes["d"].RefusedOpenStats().Beyond, f.beyond)
			}
			// After the flood h still reaches d.
			if err := roundTrip(t, c.nodes["h"], "d", EchoService, []byte("after")); err != nil {
				t.Errorf("h's round trip to d after the flood: %v", err)
			}
		})
	}
}

// TestHonestOpensNotRefusedByOpenBudget: h, an honest member, first has
// 200 of its opens refused by d (a service d does not have, within its
// budget of refused opens), then opens 1,000 circuits to d's echo
// service from 16 goroutines, as fast as they round trip (the
// benchmark's open loop), directly and through a relay: none is
// refused, as the budget counts only refused opens. d's budget earns 1 a
// second here (its bucket holds MaxCircuitsPerSource, 1,024), so that a
// budget counting every open would refuse some of the 1,200.
func TestHonestOpensNotRefusedByOpenBudget(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.RefusedOpensPerSource = 1 }
	c.build("h-d", "g-r", "r-d")
	c.waitRoute("g", "d", 2)
	for _, from := range []string{"h", "g"} {
		t.Run(from, func(t *testing.T) {
			n := c.nodes[from]
			// A first circuit, so that the opens after it use one-message
			// handshakes, not the relay's budget of full ones.
			if err := roundTrip(t, n, "d", EchoService, []byte("first")); err != nil {
				t.Fatal(err)
			}
			for range 200 {
				if _, err := n.Dial(ctxT(t, patience), "d", "nope"); !errors.Is(err, circuit.ErrNoService) {
					t.Fatalf("open to a service d does not have: %v, want ErrNoService", err)
				}
			}
			var next atomic.Int64
			var mu sync.Mutex
			var errs []error
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for next.Add(1) <= 1000 {
						if err := roundTrip(t, n, "d", EchoService, []byte("open loop")); err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			for i, err := range errs {
				if i < 5 {
					t.Logf("failed: %v", err)
				}
			}
			if len(errs) > 0 {
				t.Fatalf("%d of %s's 1,000 circuits to d's echo failed, want none", len(errs), from)
			}
			st := c.nodes["d"].RefusedOpenStats()
			t.Logf("d: %d refused opens charged, %d refused at once", st.Charged, st.Beyond)
			if st.Beyond != 0 {
				t.Fatalf("d refused %d opens at once beyond a budget, want none", st.Beyond)
			}
		})
	}
}
