package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGossipKeyRotationKeepsTheMesh rotates the gossip key of a running
// five-node mesh the documented way (install everywhere, use everywhere,
// remove everywhere) while circuits keep flowing: no gossip message fails
// to decrypt, every member stays in the mesh, no circuit fails, a node
// holding only the new key joins afterwards and a node holding only the
// old one does not.
//
// A rotation can lose a member only through messages its peers cannot
// decrypt, so those are counted, at every node and at every moment. A
// member that memberlist suspects for want of a timely ack (a starved
// machine delays them past its 500 ms probe timeout, with or without a
// rotation) is not the rotation's doing: it must be back in every node's
// view after each step.
func TestGossipKeyRotationKeepsTheMesh(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	c := newCluster(t, true)
	var seed string
	key := oldKey
	var undecryptable atomic.Int64
	var firstUndecryptable atomic.Value
	transports := map[string]*mutedGossip{} // never muted: they count the datagrams handled
	c.tweak = func(cfg *Config) {
		cfg.Logger = slog.New(&matchHandler{Handler: cfg.Logger.Handler(), substr: "could decrypt", matched: func(r slog.Record) {
			undecryptable.Add(1)
			firstUndecryptable.CompareAndSwap(nil, cfg.Name+": "+r.Message)
		}})
		tr := mutableGossip(t)
		transports[cfg.Name] = tr
		cfg.Discovery = DiscoveryConfig{BindAddr: tr.bind, Transport: tr, Key: key, Interval: time.Second}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("k%d", i)
		n := c.add(name)
		if seed == "" {
			seed = n.Status().GossipAddr
		}
		names = append(names, name)
	}
	c.waitConverged()
	waitMembers(t, c, names, 5)
	// First contacts before the rotation: a node's first circuit to
	// another takes the full end-to-end handshake, whose third message
	// must reach the destination within HeaderTimeout (5 s) of the first
	// one's read starting, which a starved machine can miss whatever the
	// gossip key (the destination then resets the circuit, "internal
	// error"). Then each node knows every other's key: the circuits
	// counted below open in one message unless a destination asks them to
	// retry.
	for _, from := range names {
		for _, to := range names {
			if from != to {
				waitFor(t, from+"'s first circuit to "+to, patience, func() bool {
					return roundTrip(t, c.nodes[from], to, EchoService, []byte("first contact")) == nil
				})
			}
		}
	}

	// Keep circuits flowing between all pairs while the key changes.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var circuits, failed atomic.Int64
	var firstErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			from, to := names[i%5], names[(i+1+i/5)%5]
			if from == to {
				to = names[(i+2)%5]
			}
			if err := roundTrip(t, c.nodes[from], to, EchoService, []byte("during rotation")); err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%s to %s: %v", from, to, err))
			}
			circuits.Add(1)
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond): // pace: the point is continuity, not load
			}
		}
	}()

	each := func(what string, f func(*Node) error) {
		t.Helper()
		before := circuits.Load()
		for _, name := range names {
			if err := f(c.nodes[name]); err != nil {
				t.Fatalf("%s on %s: %v", what, name, err)
			}
		}
		// Let gossip run under this step: every node handles datagrams of
		// the others' gossip, sent with the keys in force, before the next
		// step (each one it could not decrypt is counted below), and every
		// node sees all five.
		waitGossipPackets(t, transports, names, 8)
		waitMembers(t, c, names, 5)
		// And circuits ran under it: on a starved machine a step can
		// take less time than a few sealed round trips.
		waitFor(t, "circuits to run under the "+what+" step", patience, func() bool { return circuits.Load() >= before+4 })
		if n := undecryptable.Load(); n > 0 {
			t.Fatalf("after %s: %d gossip messages could not be decrypted (first: %v)", what, n, firstUndecryptable.Load())
		}
	}
	each("install", func(n *Node) error { return n.InstallGossipKey(newKey) })
	each("use", func(n *Node) error { return n.UseGossipKey(newKey) })
	each("remove", func(n *Node) error { return n.RemoveGossipKey(oldKey) })
	close(stop)
	wg.Wait()

	if f := failed.Load(); f > 0 || circuits.Load() < 10 {
		t.Errorf("%d of %d circuits failed during the rotation (first: %v)", f, circuits.Load(), firstErr.Load())
	}
	for _, name := range names {
		kr, err := c.nodes[name].GossipKeys()
		if err != nil || kr.Primary != KeyFingerprint(newKey) || len(kr.Keys) != 1 {
			t.Fatalf("%s's keyring after the rotation: %+v, %v", name, kr, err)
		}
	}
	// Gossip now runs on the new key alone: a node with only the new key
	// joins, one with only the old key does not.
	key = newKey
	c.add("fresh")
	waitMembers(t, c, append(names, "fresh"), 6)
	key = oldKey
	stale := c.add("stale") // Start has tried the join by the time it returns
	if m := stale.Members(); len(m) != 1 {
		t.Fatalf("a node with the old key joined: it sees %+v", m)
	}
	for _, name := range names {
		for _, m := range c.nodes[name].Members() {
			if m.Name == "stale" {
				t.Fatalf("%s let in a member with the old key", name)
			}
		}
	}
}

// matchHandler passes records on to Handler and calls matched with those
// whose message contains substr.
type matchHandler struct {
	slog.Handler
	substr  string
	matched func(slog.Record)
}

func (h *matchHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *matchHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.matched(r)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *matchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &matchHandler{Handler: h.Handler.WithAttrs(as), substr: h.substr, matched: h.matched}
}

func (h *matchHandler) WithGroup(name string) slog.Handler {
	return &matchHandler{Handler: h.Handler.WithGroup(name), substr: h.substr, matched: h.matched}
}

// waitMembers waits until every named node sees want members.
func waitMembers(t *testing.T, c *cluster, names []string, want int) {
	t.Helper()
	// A member whose alive broadcast was dropped (a full socket buffer on a
	// loaded machine) is learnt at the next push/pull, every 30 s: wait
	// for two of them.
	deadline := time.Now().Add(65 * time.Second)
	for _, name := range names {
		for len(c.nodes[name].Members()) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %+v, want %d members", name, c.nodes[name].Members(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitGossipPackets waits until memberlist at every named node handled
// at least n more gossip datagrams: a datagram its transport handed on
// once two more followed it (see mutedGossip), whether or not it could
// be decrypted. A count of completed probes instead (answered within
// memberlist's 500 ms probe timeout) stayed at 0 for 90 s at one node of
// a machine at load 30, while gossip went on.
func waitGossipPackets(t *testing.T, transports map[string]*mutedGossip, names []string, n int64) {
	t.Helper()
	start := map[string]int64{}
	for _, name := range names {
		start[name] = transports[name].handed.Load()
	}
	for _, name := range names {
		waitFor(t, name+" to handle gossip datagrams", patience, func() bool {
			return transports[name].handed.Load() >= start[name]+n+2
		})
	}
}

func TestGossipKeyringErrors(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	c := newCluster(t, false)
	plain := c.add("plain")
	if _, err := plain.GossipKeys(); !errors.Is(err, ErrNoKeyring) {
		t.Fatalf("keys of a node without gossip: %v", err)
	}
	c.tweak = func(cfg *Config) { cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: k1} }
	n := c.add("g")
	if err := n.RemoveGossipKey(k1); !errors.Is(err, ErrKeyInUse) {
		t.Errorf("remove the primary key: %v", err)
	}
	if err := n.UseGossipKey(k2); !errors.Is(err, ErrKeyNotInstalled) {
		t.Errorf("use a key not installed: %v", err)
	}
	if err := n.RemoveGossipKey(k2); !errors.Is(err, ErrKeyNotInstalled) {
		t.Errorf("remove a key not installed: %v", err)
	}
	if err := n.InstallGossipKey([]byte("short")); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("install a 5-byte key: %v", err)
	}
	if err := n.InstallGossipKey(k2); err != nil {
		t.Fatal(err)
	}
	kr, err := n.GossipKeys()
	if err != nil || kr.Primary != KeyFingerprint(k1) || len(kr.Keys) != 2 || kr.Keys[0] != kr.Primary || kr.Keys[1] != KeyFingerprint(k2) {
		t.Fatalf("keyring %+v, %v", kr, err)
	}
}
