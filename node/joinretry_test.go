package node

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestJoinRetriedSoonWhileAlone: b starts with a's gossip address to join
// before a runs (a seed started after its members, or whose streams were
// refused on a loaded machine), and a starts 1 s later. b knows no member
// then, so it must try again soon, not wait JoinInterval (60 s here).
// Before, b retried only every JoinInterval: it was still alone 40 s on.
func TestJoinRetriedSoonWhileAlone(t *testing.T) {
	seed := unboundGossipAddr(t) // the address a binds later
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), JoinInterval: time.Minute, Join: []string{seed}}
	}
	b := c.add("b")
	if m := b.disco.ml.NumMembers(); m != 1 {
		t.Fatalf("b knows %d members before a started", m)
	}
	time.Sleep(time.Second)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: seed, Key: make([]byte, 32), JoinInterval: time.Minute}
	}
	a := c.add("a")
	started := time.Now()
	deadline := started.Add(40 * time.Second)
	for b.disco.ml.NumMembers() < 2 || a.disco.ml.NumMembers() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("b still knows %d members and a %d, %v after a started at the address b joins (JoinInterval 1m)",
				b.disco.ml.NumMembers(), a.disco.ml.NumMembers(), time.Since(started).Round(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("b joined a %v after a started", time.Since(started).Round(time.Millisecond))
}

// unboundGossipAddr is a loopback address whose port is free for TCP and
// UDP now and lies below the kernel's ephemeral range (32768 and up on
// Linux), so that no socket of another test, bound to port 0 meanwhile,
// takes it before the node meant to bind it later does.
func unboundGossipAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: port})
		if err != nil {
			continue
		}
		_ = nt.Shutdown()
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	t.Fatal("no port of 127.0.0.1 below the ephemeral range free for both TCP and UDP gossip")
	return ""
}
