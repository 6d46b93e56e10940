//go:build linux

// Package lab holds the network-namespace lab (netns.sh) and its test.
package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGossipLabEveryNodeReachesEveryOther runs `netns.sh up` and `check`
// in gossip mode: 20 real daemons, one per network namespace, that find
// each other only by gossip, with --max-links 3 --target-links 2; check
// asserts that every node reaches every other by name and pings, and that
// none holds more than 3 links. It needs root and network namespaces, and
// says so when it cannot run (a skip, never a pass).
func TestGossipLabEveryNodeReachesEveryOther(t *testing.T) {
	if testing.Short() {
		t.Skip("NOT RUN: the gossip lab starts 20 daemons in network namespaces (about a minute); run without -short, as root")
	}
	if os.Geteuid() != 0 {
		t.Skip("NOT RUN: the gossip lab needs root (network namespaces and veth pairs)")
	}
	prefix := fmt.Sprintf("lt%d", os.Getpid()%10000)
	if out, err := exec.Command("ip", "netns", "add", prefix+"-probe").CombinedOutput(); err != nil {
		t.Skipf("NOT RUN: cannot create network namespaces here: %v: %s", err, out)
	}
	if out, err := exec.Command("ip", "netns", "del", prefix+"-probe").CombinedOutput(); err != nil {
		t.Fatalf("delete the probe namespace: %v: %s", err, out)
	}
	dir, err := os.MkdirTemp("", "cmlab")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "MODE=gossip", "N=20", "MAX_LINKS=3", "TARGET_LINKS=2", "TIMEOUT=180",
		"PREFIX="+prefix, "LAB="+dir)
	run := func(step string) string {
		cmd := exec.Command("bash", "netns.sh", step)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("netns.sh %s: %v\n%s", step, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		run("down")
		os.RemoveAll(dir)
	})
	t.Log(run("up"))
	out := run("check")
	t.Log(out)
	for _, want := range []string{"every node lists every other of 20 as reachable", "pings every other node by name", "(bound 3)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("check did not say %q:\n%s", want, out)
		}
	}
}
