package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/internal/cpuquota"
	"github.com/circuitmesh/circuitmesh/node"
)

// TestE2EStarvedDaemonAmongHealthyOnes runs a daemon s starved of CPU
// between two daemons that are not, a – s – c: s (started after this
// process moved under a quota of 20 ms per 100 ms, beside a busy loop of
// this process) gets about a tenth of a core, while a and c run their
// timers at full speed. For a minute a pings c through s and s itself,
// s pings c, and a fetches 4 MiB from c through s: every one must
// succeed, and no link may be declared down. CIRCUITMESH_STARVE sets
// how long (default 1m). Needs root and the cgroup v1 cpu controller.
func TestE2EStarvedDaemonAmongHealthyOnes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a minute with a CPU-starved daemon")
	}
	hold := envDuration(t, "CIRCUITMESH_STARVE", time.Minute)
	l := newLab(t, "starve")
	web, wantSum := bodyServer(t, 4<<20)
	a := l.start("a", "", "--forward", "127.0.0.1:0=c/web")
	fwd := a.forwardAddr(t, "c/web")
	c := l.start("c", "", "--expose", "web="+web)
	const q, p = 20 * time.Millisecond, 100 * time.Millisecond
	cpuquota.Under(t, q, p) // s, started now, shares this process's quota
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for x := 0; !stop.Load(); x++ {
		}
	})
	t.Cleanup(func() { stop.Store(true); wg.Wait() })
	began := time.Now()
	s := l.start("s", "", "--link", a.addr, "--link", c.addr)
	own, err := cpuquota.Of("self")
	if err != nil {
		t.Fatal(err)
	}
	if its, err := cpuquota.Of(fmt.Sprint(s.cmd.Process.Pid)); err != nil || its != own {
		t.Fatalf("s runs in cpu cgroup %q (%v), not under this process's quota (%q)", its, err, own)
	}
	a.waitRoute(t, "c", func(p node.PeerInfo) bool { return p.NextHop == "s" })
	c.waitRoute(t, "a", func(p node.PeerInfo) bool { return p.NextHop == "s" })
	s.waitRoute(t, "c", anyRoute)
	t.Logf("starved s linked and routed in %v", time.Since(began).Round(time.Millisecond))

	downs := func() map[string]int {
		m := map[string]int{}
		for _, d := range []*daemon{a, c, s} {
			m[d.name] = strings.Count(d.log.String(), `msg="link down"`)
		}
		return m
	}
	ping := func(from *daemon, to string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var p admin.Ping
		if err := from.client().Get(ctx, admin.PathPing, url.Values{"peer": {to}}, &p); err != nil {
			return fmt.Errorf("ping %s→%s: %w", from.name, to, err)
		}
		return nil
	}
	var pings, fetches, failed int
	var slowest time.Duration
	end := time.Now().Add(hold)
	for i := 0; time.Now().Before(end); i++ {
		start := time.Now()
		var err error
		switch i % 4 {
		case 0:
			err = ping(a, "c")
		case 1:
			err = ping(a, "s")
		case 2:
			err = ping(s, "c")
		case 3:
			var sum [32]byte
			var n int64
			sum, n, err = fetch("http://"+fwd+"/", time.Minute)
			if err == nil && sum != wantSum {
				err = fmt.Errorf("fetched %d bytes with another hash than the %d served", n, 4<<20)
			}
			if err != nil {
				err = fmt.Errorf("fetch c/web through s: %w", err)
			}
			fetches++
		}
		if i%4 != 3 {
			pings++
		}
		slowest = max(slowest, time.Since(start))
		if err != nil {
			failed++
			t.Errorf("%v into the starvation: %v", time.Since(began).Round(time.Millisecond), err)
		}
	}
	t.Logf("%v with s under %v of CPU per %v: %d pings and %d fetches of 4 MiB, %d failed, slowest %v; link downs %v",
		hold, q, p, pings, fetches, failed, slowest.Round(time.Millisecond), downs())
	for name, k := range downs() {
		if k > 0 {
			t.Errorf("%s declared %d links down while every daemon was alive", name, k)
		}
	}
}
