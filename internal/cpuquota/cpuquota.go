// Package cpuquota starves a test process of CPU for real: it moves the
// process into a cgroup v1 cpu cgroup with a quota, so that tests can show
// what holds on a machine that gives the process a fraction of a core.
// Group does the same for other processes (a daemon the test started),
// and lifts the quota while they run.
package cpuquota

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
	g := newGroup(t, "cpuquota", quota, period)
	g.Add(os.Getpid())
}

// Group is a cgroup v1 cpu cgroup with a quota, a child of this test
// process's own, into which the test moves processes it started.
type Group struct {
	t        *testing.T
	dir, own string
}

var groups atomic.Int64

// NewGroup makes a Group allowed quota of CPU time per period, removed
// when the test ends (the processes still in it moved back to this
// process's cgroup first). It skips the test, saying why, where it cannot:
// not root, no cgroup v1 cpu controller.
func NewGroup(t *testing.T, quota, period time.Duration) *Group {
	t.Helper()
	return newGroup(t, fmt.Sprintf("cpuquota-group%d", groups.Add(1)), quota, period)
}

func newGroup(t *testing.T, prefix string, quota, period time.Duration) *Group {
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
	g := &Group{t: t, own: own, dir: filepath.Join(own, fmt.Sprintf("%s-%d", prefix, os.Getpid()))}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		t.Fatalf("create cgroup %s: %v", g.dir, err)
	}
	t.Cleanup(func() {
		b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
		if err != nil {
			t.Errorf("read the processes of %s: %v", g.dir, err)
		}
		for _, pid := range strings.Fields(string(b)) {
			// A process may end meanwhile: only the removal below counts.
			os.WriteFile(filepath.Join(own, "cgroup.procs"), []byte(pid), 0o644)
		}
		if err := os.Remove(g.dir); err != nil {
			t.Errorf("remove cgroup %s: %v", g.dir, err)
		}
	})
	g.write("cpu.cfs_period_us", period.Microseconds())
	g.write("cpu.cfs_quota_us", quota.Microseconds())
	return g
}

func (g *Group) write(file string, v int64) {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.dir, file), []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
		g.t.Fatalf("write %s of %s: %v", file, g.dir, err)
	}
}

// Add moves process pid (all its threads) under the group's quota.
func (g *Group) Add(pid int) {
	g.t.Helper()
	g.write("cgroup.procs", int64(pid))
}

// Wrap is a command line prefix that starts a command under the group's
// quota from its first instruction: a shell that moves itself into the
// group, then executes the command.
func (g *Group) Wrap() []string {
	return []string{"sh", "-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(g.dir, "cgroup.procs")}
}

// Holds reports whether process pid runs under the group's quota.
func (g *Group) Holds(pid int) (bool, error) {
	path, err := Of(strconv.Itoa(pid))
	if err != nil {
		return false, err
	}
	return filepath.Join(cpuCgroupRoot, path) == g.dir, nil
}

// Lift ends the group's quota: its processes may use every core again.
func (g *Group) Lift() {
	g.t.Helper()
	g.write("cpu.cfs_quota_us", -1)
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
