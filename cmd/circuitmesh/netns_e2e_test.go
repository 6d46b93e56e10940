//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// netnsLab gives each daemon a network namespace of its own, so that
// links and gossip cross real kernel networking as between hosts. It
// skips the test, saying why, where namespaces cannot be made.
type netnsLab struct {
	t      *testing.T
	prefix string
}

func newNetnsLab(t *testing.T) *netnsLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("NOT RUN: needs root (network namespaces and veth pairs)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("NOT RUN: needs iproute2 (ip)")
	}
	n := &netnsLab{t: t, prefix: fmt.Sprintf("cmt%d", os.Getpid()%100000)}
	if out, err := exec.Command("ip", "netns", "add", n.prefix+"-probe").CombinedOutput(); err != nil {
		t.Skipf("NOT RUN: cannot create network namespaces here: %v: %s", err, out)
	}
	n.ip("netns", "del", n.prefix+"-probe")
	return n
}

func (n *netnsLab) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ns creates the namespace name (with lo up), deleted when the test ends
// (after the daemons in it, whose cleanups run first).
func (n *netnsLab) ns(name string) string {
	n.t.Helper()
	full := n.prefix + "-" + name
	n.ip("netns", "add", full)
	n.t.Cleanup(func() { exec.Command("ip", "netns", "del", full).Run() })
	n.ip("-n", full, "link", "set", "lo", "up")
	return full
}

// veth joins namespaces a and b with a veth pair (interfaces ifa and
// ifb) and gives each end its address (CIDR).
func (n *netnsLab) veth(a, ifa, addrA, b, ifb, addrB string) {
	n.t.Helper()
	n.ip("link", "add", ifa, "netns", a, "type", "veth", "peer", "name", ifb, "netns", b)
	n.ip("-n", a, "addr", "add", addrA, "dev", ifa)
	n.ip("-n", b, "addr", "add", addrB, "dev", ifb)
	n.ip("-n", a, "link", "set", ifa, "up")
	n.ip("-n", b, "link", "set", ifb, "up")
}

// TestNetnsGossipOnEveryAddressAdvertisesTheJoinedNetwork: a host with
// two networks, the mesh's LAN and another holding its default route
// (a management network, an uplink), runs the daemon with
// --gossip 0.0.0.0:PORT and joins a member on the LAN. It must announce
// its LAN address, the one the member it joined reaches it at, not the
// default route's, which no member can reach: there memberlist's probes
// go unanswered, every member declares it dead within seconds and its
// links rest on what it dials itself.
func TestNetnsGossipOnEveryAddressAdvertisesTheJoinedNetwork(t *testing.T) {
	nl := newNetnsLab(t)
	a, b, up := nl.ns("a"), nl.ns("b"), nl.ns("up")
	nl.veth(a, nl.prefix+"a", "10.93.0.1/24", b, nl.prefix+"b", "10.93.0.2/24")
	// b's other network, where its default route points.
	nl.veth(b, nl.prefix+"u", "10.94.0.2/24", up, nl.prefix+"x", "10.94.0.1/24")
	nl.ip("-n", b, "route", "add", "default", "via", "10.94.0.1")

	l := newLab(t, "ns")
	l.wrap = []string{"ip", "netns", "exec", a}
	da := l.start("a", "", "--listen", "10.93.0.1:4242", "--gossip", "10.93.0.1:7946", "--join", "10.93.0.1:7946")
	l.wrap = []string{"ip", "netns", "exec", b}
	db := l.start("b", "", "--listen", "0.0.0.0:4242", "--gossip", "0.0.0.0:7946", "--join", "10.93.0.1:7946")

	if got := db.gossipAddr(t); got != "10.93.0.2:7946" {
		t.Errorf("b announces gossip address %s, want 10.93.0.2:7946 (its address on the network it joined)", got)
	}
	da.waitRoute(t, "b", anyRoute)
	// memberlist suspects a member after a missed probe and declares it
	// dead a few seconds later (7 s after the start where b announced
	// the unreachable address); 15 s leaves room for a loaded machine.
	time.Sleep(15 * time.Second)
	if log := da.log.String(); strings.Contains(log, "Marking b as failed") || strings.Contains(log, "Suspect b has failed") {
		t.Errorf("a's gossip suspected or declared b dead while both ran on one LAN (a's log follows)")
	}
}
