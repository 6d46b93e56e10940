package node

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdGossipStreams keeps n TCP connections to addr open, as a stranger
// without a certificate or gossip key can: each sends nothing, and is
// opened again as soon as the node closes it. It returns how many
// connections it opened; the holders end when ctx ends.
func holdGossipStreams(ctx context.Context, t *testing.T, addr string, n int) *atomic.Int64 {
	t.Helper()
	var opened atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				opened.Add(1)
				at := time.Now()
				stop := context.AfterFunc(ctx, func() { c.Close() })
				_, _ = c.Read(make([]byte, 1)) // until the node closes it
				stop()
				c.Close()
				if time.Since(at) < 50*time.Millisecond {
					// Refused at accept (the slots are taken): try
					// again a little later.
					select {
					case <-ctx.Done():
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}()
	}
	return &opened
}

// TestRedteamGossipStreamSlotsBlockJoins: a stranger that reaches the
// gossip port (no certificate, no gossip key: the bound is counted
// before any decryption) holds the seed's 16 inbound gossip stream slots
// with 24 silent TCP connections, reopening each when the seed closes it
// (memberlist's 10 s timeout; 10 ms after a refusal at accept).
// A node of the mesh that joins through the seed (memberlist's join is
// a TCP push-pull) is closed at accept every time and never becomes a
// member: the stranger keeps every new node out of the mesh through
// that seed. The seed should keep admitting honest push-pulls.
func TestRedteamGossipStreamSlotsBlockJoins(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"no gossip key", nil}, {"gossip key the stranger lacks", []byte("0123456789abcdef")}} {
		t.Run(tc.name, func(t *testing.T) { gossipSlotsBlockJoins(t, tc.key) })
	}
}

func gossipSlotsBlockJoins(t *testing.T, key []byte) {
	c := newCluster(t, true)
	seedAddr := ""
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", JoinInterval: time.Second, Key: key}
		if seedAddr != "" {
			cfg.Discovery.Join = []string{seedAddr}
		}
	}
	seed := c.add("seed")
	seedAddr = seed.Status().GossipAddr

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := holdGossipStreams(ctx, t, seedAddr, gossipStreams+8)
	// Let the holders take the slots.
	time.Sleep(500 * time.Millisecond)

	j := c.add("joiner")
	deadline := time.Now().Add(15 * time.Second)
	joined := false
	for time.Now().Before(deadline) && !joined {
		time.Sleep(200 * time.Millisecond)
		joined = seed.disco.ml.NumMembers() >= 2 && j.disco.ml.NumMembers() >= 2
	}
	t.Logf("stranger opened %d connections; seed refused %d gossip streams/packets; seed lists %d members, joiner %d",
		opened.Load(), gossipRefused(seed), seed.disco.ml.NumMembers(), j.disco.ml.NumMembers())
	if !joined {
		t.Errorf("a node of the mesh did not join through the seed within 15 s (JoinInterval 1 s) while a stranger held the seed's %d gossip stream slots",
			gossipStreams)
	}
}
