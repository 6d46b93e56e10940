package node

import (
	"encoding/json"
	"math"
	"net"
	"testing"
	"time"
)

// TestAttackGossipForgeriesFromManySources: a stranger with no
// certificate and no gossip key (the default is none) sends a node's
// gossip port datagrams of alive messages about a member whose
// certificate the node knows, each with a random signature and a new
// timestamp, from many source addresses (127.0.x.y on loopback: each a
// source prefix of its own, as spoofed UDP sources or the /64s of an
// IPv6 block are). The budget of failed checks was per source prefix
// only (burst 100, 4,096 prefixes tracked, a new one evicting an old
// one): each new source brought a fresh allowance, so the node ran an
// Ed25519 check, under memberlist's node lock, for about every forgery
// sent (2,000 sources, 16,000 datagrams: 169,784 failed checks in 7.6 s,
// about 6 s of CPU). Now the node's failed checks, from all sources
// together, keep to a node-wide budget, of which a source gets only a
// share while it is contended, and forgeries beyond it are dropped
// unchecked. Meanwhile the member's own new metadata, sent from its
// gossip address during the flood, is still checked and taken, and the
// member stays listed.
func TestAttackGossipForgeriesFromManySources(t *testing.T) {
	const (
		sources = 500
		per     = 4 // datagrams per source: 52 forgeries, within a source's own burst
	)
	a, b := gossipPair(t)
	a.disco.mu.Lock()
	held := a.disco.verified["b"].ts
	a.disco.mu.Unlock()
	ts := held + 1_000_000 // newer than any metadata b signs in the test
	forgery := func() []byte {
		ts++
		body, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: ts})
		return forgedAlive(t, "b", b.Status().GossipAddr, math.MaxUint32, randomlySigned(body), nil)
	}
	to, err := net.ResolveUDPAddr("udp", a.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	var conns []*net.UDPConn
	for i := range sources {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, byte(10+i/250), byte(1+i%250))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	var dgs [][]byte
	msgs := 0
	for range sources * per {
		p, n := aliveDatagram(forgery)
		dgs = append(dgs, p)
		msgs += n
	}

	refused := a.disco.guard.metric.WithLabelValues("alive", refuseNodeSignatures)
	checks0, fails0, cpu0 := sigChecks.Load(), sigFails.Load(), cpuTime()
	start := time.Now()
	for i, p := range dgs {
		if _, err := conns[i%sources].WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
		if i == len(dgs)/2 {
			// b's metadata changes (its coordinate, say) mid-flood:
			// memberlist sends its new alive message from b's address.
			if err := b.disco.ml.UpdateNode(time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if i%50 == 49 {
			time.Sleep(20 * time.Millisecond) // 2,500 datagrams a second at most
		}
	}
	waitChecksSettled() // until a's gossip handler has drained its queue
	elapsed := time.Since(start)
	checks, fails, cpu := sigChecks.Load()-checks0, sigFails.Load()-fails0, cpuTime()-cpu0
	t.Logf("%d sources sent %d datagrams (%d forged alive messages) in %v: %d Ed25519 checks (%d failed), %v dropped unchecked for the node's budget, process CPU %v",
		sources, len(dgs), msgs, elapsed.Round(time.Millisecond), checks, fails, counterValue(refused), cpu.Round(time.Millisecond))

	// The node-wide budget and the reserve of members' addresses, with
	// room for a loaded machine.
	limit := int64(sigFailNodeBurst + sigFailReserveBurst + (sigFailNodeRate+sigFailReserveRate)*elapsed.Seconds() + 200)
	if fails > limit {
		t.Errorf("forgeries from %d sources cost %d failed signature checks in %v (want at most %d, the node's budget)",
			sources, fails, elapsed.Round(time.Millisecond), limit)
	}
	if counterValue(refused) == 0 {
		t.Error("no alive message counted as dropped for the node's budget")
	}
	if linkAddrOf(a, "b") != b.disco.linkAddr() {
		t.Errorf("a lists b at %q, want %q", linkAddrOf(a, "b"), b.disco.linkAddr())
	}
	// b's new metadata, sent during the flood, is taken: memberlist sends
	// it a few times, and when a's gossip handler queue, full of the
	// flood on a loaded machine, dropped them all, the next push-pull
	// (every 30 s) carries it.
	waitFor(t, "a to hold the metadata b signed during the flood", 45*time.Second, func() bool {
		a.disco.mu.Lock()
		defer a.disco.mu.Unlock()
		v := a.disco.verified["b"]
		return v.ts > held && v.ts < held+1_000_000
	})
}
