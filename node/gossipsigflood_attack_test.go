package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math"
	"net"
	"testing"
	"time"
)

// gossipJoining is a cluster tweak for nodes that gossip on loopback,
// joining *seed once it is set.
func gossipJoining(seed *string) func(*Config) {
	return func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", TargetLinks: 2, MaxLinks: 4, Interval: 500 * time.Millisecond}
		if *seed != "" {
			cfg.Discovery.Join = []string{*seed}
		}
	}
}

// gossipPair starts b, then a gossiping with it, and waits until each
// holds the other's verified metadata.
func gossipPair(t *testing.T) (a, b *Node) {
	_, nodes := gossipNodes(t, "b", "a")
	return nodes[1], nodes[0]
}

// gossipNodes starts the named nodes in a new cluster, each after the
// first gossiping with the first, and waits until each holds every
// other's verified metadata.
func gossipNodes(t *testing.T, names ...string) (*cluster, []*Node) {
	c := newCluster(t, true)
	var seed string
	c.tweak = gossipJoining(&seed)
	var nodes []*Node
	for _, name := range names {
		nodes = append(nodes, c.add(name))
		seed = nodes[0].Status().GossipAddr
	}
	c.tweak = nil
	waitVerified(t, nodes)
	return c, nodes
}

// randomlySigned is metadata body with a signature of the right form,
// but 64 random bytes: a forger spends no cryptography on it.
func randomlySigned(body []byte) []byte {
	sig := make([]byte, ed25519.SignatureSize)
	rand.Read(sig)
	meta := append(append(body[:len(body)-1:len(body)-1], metaSigField...), base64.RawStdEncoding.EncodeToString(sig)...)
	return append(meta, `"}`...)
}

// aliveDatagram packs the alive messages next makes into a compound
// datagram of at most gossipPacketMax bytes (the message that does not
// fit is dropped), and says how many it holds.
func aliveDatagram(next func() []byte) ([]byte, int) {
	var flat [][]byte
	for {
		more := append(flat, next())
		if len(compound(more)) > gossipPacketMax {
			return compound(flat), len(flat)
		}
		flat = more
	}
}

// waitChecksSettled waits until the process's signature checks stop for
// a quarter of a second (a gossip handler drained its queue), 10 s at
// most.
func waitChecksSettled() {
	last := int64(-1)
	for range 40 {
		time.Sleep(250 * time.Millisecond)
		n := sigChecks.Load()
		if n == last {
			return
		}
		last = n
	}
}

// TestAttackGossipForgedSignaturesCostCPU: a stranger with no certificate
// and no gossip key (the default is none) sends a node's gossip port
// datagrams of alive messages about a member whose certificate the node
// knows, each with metadata carrying a signature and a new
// timestamp, so that no two are alike (the signature is random bytes). Each costs the node an Ed25519
// check (the cache remembers failures by content only), under
// memberlist's node lock, and the stranger does no cryptography: without
// a budget of failed checks per source (as routing has per neighbour),
// the checks a second are bounded only by the datagrams it sends. The
// same with alive messages encoded as msgpack arrays, which memberlist
// reads as it reads maps.
func TestAttackGossipForgedSignaturesCostCPU(t *testing.T) {
	asArrays(t, func(t *testing.T) {
		a, b := gossipPair(t)
		a.disco.mu.Lock()
		held := a.disco.verified["b"].ts
		a.disco.mu.Unlock()
		ts := held
		forgery := func() []byte {
			ts++
			body, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: ts})
			return forgedAlive(t, "b", b.Status().GossipAddr, math.MaxUint32, randomlySigned(body), nil)
		}
		datagram := func() ([]byte, int) { return aliveDatagram(forgery) }
		conn := forgerConn(t)
		to, err := net.ResolveUDPAddr("udp", a.Status().GossipAddr)
		if err != nil {
			t.Fatal(err)
		}

		const flood = 2 * time.Second
		const perSecond = 500 // datagrams: about 1.4 MB/s
		checks0, cpu0 := sigChecks.Load(), cpuTime()
		start := time.Now()
		sent, messages, bytes := 0, 0, 0
		for time.Since(start) < flood {
			p, n := datagram()
			if _, err := conn.WriteToUDP(p, to); err != nil {
				t.Fatal(err)
			}
			sent, messages, bytes = sent+1, messages+n, bytes+len(p)
			if ahead := time.Duration(sent)*time.Second/perSecond - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		waitChecksSettled() // until a's gossip handler has drained its queue
		elapsed := time.Since(start)
		checks, cpu := sigChecks.Load()-checks0, cpuTime()-cpu0
		t.Logf("a stranger sent %d datagrams (%d bytes, %d alive messages) in %v: the process ran %d Ed25519 checks, %v of CPU over %v",
			sent, bytes, messages, flood, checks, cpu.Round(time.Millisecond), elapsed.Round(time.Millisecond))
		if linkAddrOf(a, "b") == "127.0.0.9:9" {
			t.Fatal("a took the forged address for b")
		}
		// A bound like the routing layer's for failed checks (per sender,
		// 20 a second, burst 100), with room for honest metadata changes.
		limit := int64(200 + 100*elapsed.Seconds())
		if checks > limit {
			t.Errorf("forged metadata from a stranger cost %d signature checks in %v (want at most %d)", checks, elapsed.Round(time.Millisecond), limit)
		}
	})
}

// TestAttackGossipMemberNameControls: a stranger with no certificate and
// no gossip key announces a member whose name carries terminal control
// sequences, with metadata of the mesh (unsigned: a member whose
// certificate is not known is taken as a claim). The node lists the name
// in Members, which `circuitmesh members` prints to the operator's
// terminal. No node certificate can carry such a name
// (identity.ValidateName), so the node should refuse it.
func TestAttackGossipMemberNameControls(t *testing.T) {
	c := newCluster(t, true)
	var none string
	c.tweak = gossipJoining(&none)
	a := c.add("a")
	c.tweak = nil
	const name = "b\x1b]0;owned\x07\r\x1b[2Kc"
	body, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	conn := forgerConn(t)
	to, err := net.ResolveUDPAddr("udp", a.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP(forgedAlive(t, name, conn.LocalAddr().String(), 1, body, nil), to); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range a.Members() {
			if m.Name == name {
				t.Fatalf("a lists a member named %q, announced by a stranger", m.Name)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
