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
// opened again as soon as the node closes it. The connections come from
// the given source addresses in turn (other loopback addresses than the
// node's, so that the stranger is another host than the node's members).
// It returns how many connections it opened; the holders end when ctx
// ends.
func holdGossipStreams(ctx context.Context, t *testing.T, addr string, n int, from []net.IP) *atomic.Int64 {
	t.Helper()
	var opened atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range n {
		wg.Add(1)
		d := &net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: from[i%len(from)]}}
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
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

// TestAttackGossipStreamSlotsBlockJoins: a stranger that reaches the
// gossip port (no certificate, no gossip key: the bound is counted
// before any decryption) tries to hold the seed's 16 inbound gossip
// stream slots with 24 silent TCP connections, reopening each when the
// seed closes it (10 ms after a refusal at accept), from one address
// (127.0.0.2) or from six (127.0.0.2 to 127.0.0.7). A node of the mesh
// joins through the seed (memberlist's join is a TCP push-pull, from
// 127.0.0.1): the seed must list it. Before the seed shared its stream
// slots between source addresses and gave a full table's waiting
// streams' slots to new streams, the joiner was closed at accept every
// time and not listed 15 s later (without the stranger: 0.9 s).
func TestAttackGossipStreamSlotsBlockJoins(t *testing.T) {
	one := []net.IP{net.IPv4(127, 0, 0, 2)}
	var six []net.IP
	for i := range 6 {
		six = append(six, net.IPv4(127, 0, 0, byte(2+i)))
	}
	for _, k := range []struct {
		name string
		key  []byte
	}{{"no gossip key", nil}, {"gossip key the stranger lacks", []byte("0123456789abcdef")}} {
		for _, f := range []struct {
			name string
			from []net.IP
		}{{"one address", one}, {"six addresses", six}} {
			t.Run(k.name+", "+f.name, func(t *testing.T) { gossipSlotsBlockJoins(t, k.key, f.from) })
		}
	}
}

func gossipSlotsBlockJoins(t *testing.T, key []byte, from []net.IP) {
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
	opened := holdGossipStreams(ctx, t, seedAddr, 24, from)
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
		t.Errorf("a node of the mesh did not join through the seed within 15 s (JoinInterval 1 s) while a stranger from %d addresses held 24 connections to its gossip port",
			len(from))
	}
}
