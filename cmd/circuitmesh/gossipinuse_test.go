package main

import (
	"net"
	"strings"
	"testing"
)

// TestGossipPortInUseIsNamedWithItsFlag: a second daemon started with a
// --gossip port another process holds (a daemon gossiping there, or any
// UDP socket) failed with memberlist's own words, "start node: start node
// x: start gossip on ...: gossip transport: failed to start TCP listener
// ...", where a taken --listen or --metrics port says which flag to
// change. Now it says the same of --gossip.
func TestGossipPortInUseIsNamedWithItsFlag(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "", "--gossip", "127.0.0.1:0")
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, addr := range []string{a.gossipAddr(t), udp.LocalAddr().String()} {
		code, out := l.exitCode("run", "--data-dir", t.TempDir(), "--insecure", "--name", "x", "--listen", "127.0.0.1:0", "--gossip", addr)
		if code != 1 || !strings.Contains(out, "address already in use") || !strings.Contains(out, addr+" (is another circuitmesh running? choose another with --gossip)") ||
			strings.Contains(out, "gossip transport") {
			t.Errorf("run --gossip %s, taken: exit status %d, want 1 naming the address and --gossip:\n%s", addr, code, out)
		}
	}
}
