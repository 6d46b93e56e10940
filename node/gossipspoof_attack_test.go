package node

import (
	"encoding/json"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
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
// unchecked: once the node's budget is spent, by the gossip guard,
// before memberlist's handler queue (1,024 messages), which a flood
// from fresh sources otherwise filled, so that memberlist dropped most
// forgeries uncounted and the member's own messages with them (its new
// metadata then waited for the next push-pull, 30 s). Meanwhile the
// member's own new metadata, sent from its gossip address during the
// flood, is checked and taken within seconds, and the member stays
// listed.
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
	bySource := a.disco.guard.metric.WithLabelValues("alive", refuseSignatures)
	checks0, fails0, cpu0, kernel0 := sigChecks.Load(), sigFails.Load(), cpuTime(), udpRcvbufErrors(t)
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
			time.Sleep(2 * time.Millisecond) // 25,000 datagrams a second at most
		}
	}
	waitChecksSettled() // until a's gossip handler has drained its queue
	elapsed := time.Since(start)
	checks, fails, cpu := sigChecks.Load()-checks0, sigFails.Load()-fails0, cpuTime()-cpu0
	// Datagrams the kernel dropped because a's socket buffer was full
	// (from any socket of the host: other tests only add to them).
	kernel := udpRcvbufErrors(t) - kernel0
	t.Logf("%d sources sent %d datagrams (%d forged alive messages) in %v: %d Ed25519 checks (%d failed), %v dropped unchecked for the node's budget and %v for their sources, %d datagrams dropped by the kernel, process CPU %v",
		sources, len(dgs), msgs, elapsed.Round(time.Millisecond), checks, fails, counterValue(refused), counterValue(bySource), kernel, cpu.Round(time.Millisecond))

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
	// Each forgery the node read was checked or dropped by a budget
	// before memberlist queued it. Before, those that reached
	// memberlist's handler queue beyond what the budgets let through
	// filled it, and it dropped the rest uncounted, the member's own
	// messages with them: 6,181-6,975 of 26,000 in two runs, with no
	// datagram dropped by the kernel.
	perDatagram := float64(msgs) / float64(len(dgs))
	if lost := float64(msgs) - float64(fails) - counterValue(refused) - counterValue(bySource) - perDatagram*float64(kernel); lost > 0.02*float64(msgs) {
		t.Errorf("%.0f of %d forged alive messages neither checked, nor dropped by a budget or the kernel: memberlist's handler queue dropped them", lost, msgs)
	}
	if linkAddrOf(a, "b") != b.disco.linkAddr() {
		t.Errorf("a lists b at %q, want %q", linkAddrOf(a, "b"), b.disco.linkAddr())
	}
	// b's new metadata, sent during the flood, is taken: from b's own
	// alive messages (memberlist sends each a few times), or, when the
	// kernel dropped them all with the flood from a's full socket buffer
	// (under the race detector on a loaded machine), from the next
	// push-pull (every 30 s).
	waitFor(t, "a to hold the metadata b signed during the flood", 45*time.Second, func() bool {
		a.disco.mu.Lock()
		defer a.disco.mu.Unlock()
		v := a.disco.verified["b"]
		return v.ts > held && v.ts < held+1_000_000
	})
}

// udpRcvbufErrors is the host's count of UDP datagrams dropped because a
// socket's receive buffer was full (/proc/net/snmp, RcvbufErrors).
func udpRcvbufErrors(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		t.Skipf("the kernel's UDP counters are needed to tell its drops from memberlist's: %v", err)
	}
	var head []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i, name := range head {
			if name == "RcvbufErrors" && i < len(f) {
				n, err := strconv.ParseInt(f[i], 10, 64)
				if err != nil {
					t.Fatalf("/proc/net/snmp: %v", err)
				}
				return n
			}
		}
	}
	t.Fatal("/proc/net/snmp has no UDP RcvbufErrors")
	return 0
}
