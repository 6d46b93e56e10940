package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
)

// TestSoakCPUStarvedMesh runs five daemons (a ring with a chord) and 10
// busy loops per core, all at nice 19 so that they compete only with each
// other (everything else on the machine keeps its share): every daemon gets
// about 1/(10×cores+5) of the CPU. For CIRCUITMESH_SOAK (default 2m) it
// pings every node from a and d in turn through the admin API. No link may
// be declared down and no ping may fail. `make soak` runs it.
func TestSoakCPUStarvedMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: minutes of CPU starvation (run without -short, or make soak)")
	}
	if _, err := exec.LookPath("nice"); err != nil {
		t.Skip("no nice(1)")
	}
	soak := envDuration(t, "CIRCUITMESH_SOAK", 2*time.Minute)
	l := newLab(t, "soak")
	l.wrap = []string{"nice", "-n", "19"}
	ds := map[string]*daemon{}
	ds["a"] = l.start("a", "")
	ds["b"] = l.start("b", "", "--link", ds["a"].addr)
	ds["c"] = l.start("c", "", "--link", ds["b"].addr, "--link", ds["a"].addr)
	ds["d"] = l.start("d", "", "--link", ds["c"].addr)
	ds["e"] = l.start("e", "", "--link", ds["d"].addr, "--link", ds["a"].addr)
	names := []string{"a", "b", "c", "d", "e"}
	for _, from := range names {
		for _, to := range names {
			if from != to {
				ds[from].waitRoute(t, to, anyRoute)
			}
		}
	}
	before := map[string]int{}
	for _, n := range names {
		before[n] = strings.Count(ds[n].log.String(), `msg="link down"`)
	}

	busy := 10 * runtime.NumCPU()
	for range busy {
		cmd := exec.Command("nice", "-n", "19", "sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}

	var pings, failed int
	var worst time.Duration
	end := time.Now().Add(soak)
	for i := 0; time.Now().Before(end); i++ {
		from := ds[[]string{"a", "d"}[i%2]]
		to := names[(i/2)%len(names)]
		if to == from.name {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var p admin.Ping
		start := time.Now()
		err := from.client().Get(ctx, admin.PathPing, url.Values{"peer": {to}}, &p)
		cancel()
		pings++
		worst = max(worst, time.Since(start))
		if err != nil {
			failed++
			t.Errorf("ping %s→%s: %v", from.name, to, err)
		}
	}
	var downs []string
	for _, n := range names {
		lg := ds[n].log.String()
		if k := strings.Count(lg, `msg="link down"`) - before[n]; k > 0 {
			downs = append(downs, fmt.Sprintf("%s: %d", n, k))
		}
	}
	t.Logf("%v with %d busy loops on %d cores, all at nice 19: %d pings, %d failed (slowest %v), false link-downs %v",
		soak, busy, runtime.NumCPU(), pings, failed, worst.Round(time.Millisecond), downs)
	if len(downs) > 0 || failed > 0 {
		t.Fatalf("under CPU starvation: %d of %d pings failed, link-downs %v", failed, pings, downs)
	}
}

// envDuration is the duration in the environment variable name, or def
// when it is not set.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}
