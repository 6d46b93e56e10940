// Package cpuquota starves a test process of CPU for real: it moves the
// process into a cgroup v1 cpu cgroup with a quota, so that tests can show
// what holds on a machine that gives the process a fraction of a core.
package cpuquota

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cpuCgroupRoot is where the cgroup v1 cpu controller is mounted.
const cpuCgroupRoot = "/sys/fs/cgroup/cpu"

// Under moves this test process into a new cgroup v1 (a child of
// its own) allowed quota of CPU time per period, and back out when the
// test ends. It skips the test, saying why, where it cannot: not root, no
// cgroup v1 cpu controller.
func Under(t *testing.T, quota, period time.Duration) {
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
	dir := filepath.Join(own, fmt.Sprintf("cpuquota-%d", os.Getpid()))
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
	path, err := Of("self")
	if err != nil {
		return "", err
	}
	return filepath.Join(cpuCgroupRoot, path), nil
}

// Of is the path of process pid's cgroup v1 cpu cgroup, as
// /proc/PID/cgroup gives it ("self" for this process): a test that
// starts a process after Under can check that it shares the quota.
func Of(pid string) (string, error) {
	name := "/proc/" + pid + "/cgroup"
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controller-list:path
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "cpu") {
			return parts[2], nil
		}
	}
	return "", fmt.Errorf("no cpu controller in %s", name)
}
