package links

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cpuCgroupRoot is where the cgroup v1 cpu controller is mounted.
const cpuCgroupRoot = "/sys/fs/cgroup/cpu"

// underCPUQuota moves this test process into a new cgroup v1 (a child of
// its own) allowed quota of CPU time per period, and back out when the
// test ends. It skips the test, saying why, where it cannot: not root, no
// cgroup v1 cpu controller.
func underCPUQuota(t *testing.T, quota, period time.Duration) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to create a cgroup with a CPU quota")
	}
	if _, err := os.Stat(filepath.Join(cpuCgroupRoot, "cpu.cfs_quota_us")); err != nil {
		t.Skipf("needs the cgroup v1 cpu controller at %s: %v", cpuCgroupRoot, err)
	}
	own, err := ownCPUCgroup()
	if err != nil {
		t.Skipf("cannot find this process's cpu cgroup: %v", err)
	}
	dir := filepath.Join(own, fmt.Sprintf("linkquota-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup %s: %v", dir, err)
	}
	write := func(file string, v int64) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
			t.Fatalf("write %s of %s: %v", file, dir, err)
		}
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(own, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			t.Errorf("move back to %s: %v", own, err)
		}
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	write("cpu.cfs_period_us", period.Microseconds())
	write("cpu.cfs_quota_us", quota.Microseconds())
	write("cgroup.procs", int64(os.Getpid()))
}

// ownCPUCgroup is the directory of this process's cgroup v1 cpu cgroup.
func ownCPUCgroup() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpu" {
				return filepath.Join(cpuCgroupRoot, parts[2]), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cpu controller in /proc/self/cgroup")
}

// TestLinkSurvivesACPUQuota runs a link under a real CPU quota: this
// process may use 20 ms of CPU per 100 ms period (a tenth of a 2-core
// machine), and a goroutine that computes without pause uses it up, so
// the process is stopped for the rest of each period, while a stream
// carries data both ways over the link. a's link to b must stay up for
// 10 s and carry the stream's bytes, and a b that goes silent is still
// found dead. Needs root and the cgroup v1 cpu controller; it says so and
// skips without them.
func TestLinkSurvivesACPUQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 10 s under the quota, then a dead peer's detection (make test-long)")
	}
	underCPUQuota(t, 20*time.Millisecond, 100*time.Millisecond)
	a, b, fc, la := faultyPair(t, nil)
	defer echo(acceptedLink(t, b, "a"))()
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for x := 0; !stop.Load(); x++ {
		}
	})
	defer wg.Wait()
	defer stop.Store(true)
	const hold = 10 * time.Second
	began := time.Now()
	rounds := 0
	for time.Since(began) < hold && la.Err() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		err := roundTrip(ctx, la, 1, 16<<10)
		cancel()
		if err != nil {
			t.Fatalf("round trip %d over the link, %v into the quota: %v", rounds, time.Since(began).Round(time.Millisecond), err)
		}
		rounds++
	}
	if err := la.Err(); err != nil {
		t.Fatalf("live link declared dead %v into a quota of 20 ms per 100 ms, after %d round trips: %v",
			time.Since(began).Round(time.Millisecond), rounds, err)
	}
	t.Logf("link up %v into the quota, %d round trips of 16 KiB; the detector allows %v", hold, rounds, allowance(la))
	killed := time.Now()
	_ = fc.Close()
	a.rec.waitEvent(t, "down", detectorCap*DefaultProbeMisses*DefaultProbeInterval+patience)
	t.Logf("silent peer found dead %v after it stopped: %v", time.Since(killed).Round(time.Millisecond), la.Err())
}
