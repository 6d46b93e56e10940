package node

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// udpSink counts the UDP packets sent to an address nobody answers from,
// and the QUIC connection attempts among them (distinct destination
// connection IDs of long-header packets) by sender.
type udpSink struct {
	pc   net.PacketConn
	done chan struct{}

	mu       sync.Mutex
	packets  int
	attempts map[string]map[string]bool // sender → connection IDs
}

func newUDPSink(t *testing.T) *udpSink { return newUDPSinkAt(t, "127.0.0.1") }

// newUDPSinkAt is newUDPSink on ip (any address of 127.0.0.0/8 answers on
// Linux loopback), so that each sink is a host of its own.
func newUDPSinkAt(t *testing.T, ip string) *udpSink {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	s := &udpSink{pc: pc, done: make(chan struct{}), attempts: map[string]map[string]bool{}}
	go func() {
		defer close(s.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			s.note(from.String(), buf[:n])
		}
	}()
	t.Cleanup(func() { pc.Close(); <-s.done })
	return s
}

func (s *udpSink) note(from string, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packets++
	// QUIC long header: flags, version (4), DCID length, DCID.
	if len(p) < 6 || p[0]&0x80 == 0 || len(p) < 6+int(p[5]) {
		return
	}
	if s.attempts[from] == nil {
		s.attempts[from] = map[string]bool{}
	}
	s.attempts[from][string(p[6:6+int(p[5])])] = true
}

// counts returns the packets received and the most connection attempts
// one sender made.
func (s *udpSink) counts() (packets, mostAttempts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ids := range s.attempts {
		mostAttempts = max(mostAttempts, len(ids))
	}
	return s.packets, mostAttempts
}

// attemptsFrom is how many connection attempts sender made.
func (s *udpSink) attemptsFrom(sender string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts[sender])
}

// packetsPerDial bounds the packets of one failed QUIC dial to a silent
// address within HandshakeTimeout (quic-go sent 10: the Initial and its
// retransmissions).
const packetsPerDial = 16

// TestFakeMembersGetBoundedPackets: eight gossip members with the gossip
// key but no certificate announce link addresses where nobody answers
// (a victim's, for all the nodes know). The honest nodes, on real QUIC,
// dial each such address at most unprovenDials times, then leave it alone
// for unprovenBan, so each address receives a bounded number of packets;
// and a late honest joiner still links and reaches every honest node.
//
// The eight fakes outnumber the members a node reaches, so once all are
// barred the node is cut off from most members (islandPickLocked) and
// dials one barred member at most once per islandEvery: a node's attempts
// beyond unprovenDials at an address, summed over the addresses, stay
// within one plus one per islandEvery it ran. Whether such a dial falls
// in the test depends on how long the start took (all fakes barred before
// the watch ends), so the bound counts it rather than hoping it missed.
func TestFakeMembersGetBoundedPackets(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, TargetLinks: 2, MaxLinks: 4, Interval: 500 * time.Millisecond}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	start := time.Now()
	a := c.add("a")
	seed = a.Status().GossipAddr
	c.add("b")
	var sinks []*udpSink
	for i := range 8 {
		sink := newUDPSink(t)
		sinks = append(sinks, sink)
		fakeMember(t, "fake"+strconv.Itoa(i), key, sink.pc.LocalAddr().String(), seed)
	}
	late := c.add("late")
	reaches := func(from *Node, to string) bool {
		p, ok := from.Peer(to)
		return ok && p.Reachable
	}
	waitFor(t, "the late joiner to link and reach every honest node", 2*time.Minute, func() bool {
		return len(late.Links()) > 0 && reaches(late, "a") && reaches(late, "b") && reaches(a, "late")
	})
	// Watch the fake addresses while the policy keeps running: without a
	// bound, repair dials toward the unreachable fakes come back after
	// 1 s, 2 s, 4 s, ... of back-off.
	watch := 30 * time.Second
	if testing.Short() {
		watch = 20 * time.Second
	}
	time.Sleep(watch)
	honest := []*Node{a, c.nodes["b"], late}
	// One dial of a barred member per islandEvery per node, from the
	// start of the first: an upper bound for each node, whenever it
	// started.
	islands := 1 + int(time.Since(start)/islandEvery)
	total, dialled := 0, 0
	for i, s := range sinks {
		packets, most := s.counts()
		total += packets
		if packets > 0 {
			dialled++
		}
		t.Logf("fake%d's address: %d packets, at most %d connection attempts from one node", i, packets, most)
		if most > unprovenDials+islands {
			t.Errorf("a node made %d connection attempts to fake%d's address, more than %d and %d while cut off from most members", most, i, unprovenDials, islands)
		}
		if bound := (len(honest)*unprovenDials + len(honest)*islands) * packetsPerDial; packets > bound {
			t.Errorf("fake%d's address received %d packets, more than %d", i, packets, bound)
		}
	}
	for _, n := range honest {
		over, attempts := 0, 0
		for _, s := range sinks {
			k := s.attemptsFrom(n.Addr().String())
			attempts += k
			over += max(0, k-unprovenDials)
		}
		t.Logf("%s made %d connection attempts to the fake addresses, %d beyond %d per address (at most %d while cut off from most members)",
			n.cfg.Name, attempts, over, unprovenDials, islands)
		if over > islands {
			t.Errorf("%s made %d connection attempts to the fake addresses beyond %d per address, more than its %d dials of a barred member while cut off from most members",
				n.cfg.Name, over, unprovenDials, islands)
		}
	}
	if total > len(sinks)*len(honest)*unprovenDials*packetsPerDial+len(honest)*islands*packetsPerDial {
		t.Errorf("the fake addresses received %d packets in all, more than %d dials of %d packets", total, len(sinks)*len(honest)*unprovenDials+len(honest)*islands, packetsPerDial)
	}
	if dialled == 0 {
		t.Fatal("no node ever dialled a fake member: the test shows nothing")
	}
	for _, name := range []string{"a", "b", "late"} {
		if len(c.nodes[name].Links()) == 0 {
			t.Errorf("%s has no links", name)
		}
	}
	t.Logf("%d packets to %d fake addresses from 3 nodes in %v", total, len(sinks), watch)
}
