package node

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// Anyone holding the gossip key (anyone at all when a mesh runs gossip
// without one) can send memberlist messages about any member. A member
// refutes an accusation by raising its incarnation, a 32-bit counter that
// wraps: a forgery at the largest incarnation is never refuted. Such
// forgeries must not cut the mesh: a live link outweighs gossip, and
// metadata no node of the mesh sends is refused before memberlist takes
// it. Before, 16 forged packets (one per member to each of 4 nodes) left
// no pair reachable and no link up for as long as was watched.
func TestForgedGossipCannotCutTheMesh(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, key, "a", "b", "c", "d")
	reachable := func() int {
		k := 0
		for _, n := range nodes {
			for _, to := range nodes {
				if p, ok := n.Peer(to.cfg.Name); ok && p.Reachable && to != n {
					k++
				}
			}
		}
		return k
	}
	all := len(nodes) * (len(nodes) - 1)
	waitFor(t, "a connected mesh where every node knows every other", time.Minute, func() bool {
		for _, n := range nodes {
			if len(n.Members()) != len(nodes) {
				return false
			}
		}
		return reachable() == all
	})
	// What a forgery that worked would do: discovery closing a live link
	// because gossip says its peer is gone. A loaded machine loses links
	// of its own accord (a starved peer's control stream times out) and
	// memberlist may suspect a starved member; neither is the forgery's
	// doing, and both heal.
	var (
		mu     sync.Mutex
		closed []string
	)
	for _, n := range nodes {
		stop, err := n.SubscribeFunc(func(ev Event) {
			if ev.Kind == LinkDown && ev.Err != nil && strings.Contains(ev.Err.Error(), "no longer a gossip member") {
				mu.Lock()
				closed = append(closed, fmt.Sprintf("%s-%s: %v", n.cfg.Name, ev.Peer, ev.Err))
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	elsewhere, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	for _, attack := range []struct {
		name   string
		packet func(victim *Node) []byte
	}{
		{"alive without a link address", func(v *Node) []byte {
			return forgedAlive(t, v.cfg.Name, v.Status().GossipAddr, math.MaxUint32, []byte(`{"link":"","mesh":"test"}`), key)
		}},
		{"alive with another link address", func(v *Node) []byte {
			return forgedAlive(t, v.cfg.Name, v.Status().GossipAddr, math.MaxUint32, elsewhere, key)
		}},
		{"dead", func(v *Node) []byte { return forgedDead(t, v.cfg.Name, math.MaxUint32, key) }},
	} {
		for _, n := range nodes {
			to, err := net.ResolveUDPAddr("udp", n.Status().GossipAddr)
			if err != nil {
				t.Fatal(err)
			}
			for _, victim := range nodes {
				if _, err := conn.WriteToUDP(attack.packet(victim), to); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The policy runs every 500 ms: 6 s is a dozen chances to act on
		// the forgery.
		var trace []int
		for range 6 {
			time.Sleep(time.Second)
			trace = append(trace, reachable())
		}
		t.Logf("forged %s messages about every member: reachable ordered pairs each second %v", attack.name, trace)
		mu.Lock()
		cut := closed
		mu.Unlock()
		if len(cut) > 0 {
			t.Fatalf("after forged %s messages about every member: links closed for the forged gossip: %v (reachable ordered pairs each second %v)", attack.name, cut, trace)
		}
		waitFor(t, fmt.Sprintf("every pair reachable after forged %s messages (each second: %v)", attack.name, trace), time.Minute, func() bool {
			return reachable() == all
		})
	}
}

// A gossip member with the key and no certificate that names a new link
// address (a victim's) after each failed dial gets at most unprovenDials
// failed dials from each node, whatever the number of addresses: the bound
// per address alone let each node send QUIC handshakes to one victim
// address after another (14 of 20 addresses, 15× the attacker's gossip
// bytes, with three nodes). A node that lost its peers (starved beside
// busy loops, its peers declared it dead) is cut off from most members it
// knows and dials a barred member once per islandEvery
// (islandPickLocked): such a node may reach one more address per
// islandEvery it ran.
func TestFakeMemberCannotRotateDialsAcrossAddresses(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	start := time.Now()
	nodes := forgeMesh(t, c, key, "a", "b", "c")
	var (
		mu       sync.Mutex
		lostPeer = map[string]bool{}
	)
	for _, n := range nodes {
		stop, err := n.SubscribeFunc(func(ev Event) {
			if ev.Kind == PeerDown {
				mu.Lock()
				lostPeer[n.cfg.Name] = true
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	k := 8
	if !testing.Short() {
		k = 20
	}
	victims := make([]*udpSink, k)
	for i := range victims {
		victims[i] = newUDPSink(t)
	}
	meta := func(i int) []byte {
		b, _ := json.Marshal(memberMeta{Link: victims[i].pc.LocalAddr().String(), Mesh: "test"})
		return b
	}
	fake := &fakeMeta{meta: meta(0)}
	ml := fakeMemberlist(t, "fake", key, fake)
	if _, err := ml.Join([]string{nodes[0].Status().GossipAddr}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < k; i++ {
		time.Sleep(1500 * time.Millisecond)
		fake.set(meta(i))
		ml.UpdateNode(time.Second) // gossip spreads it even when this times out
	}
	time.Sleep(6 * time.Second) // the last dials time out
	islands := 1 + int(time.Since(start)/islandEvery)
	mu.Lock()
	lost := maps.Clone(lostPeer)
	mu.Unlock()
	for _, n := range nodes {
		from := n.Addr().String()
		hit := 0
		for _, v := range victims {
			if v.heardFrom(from) {
				hit++
			}
		}
		most, why := unprovenDials, ""
		if lost[n.cfg.Name] {
			most += islands
			why = fmt.Sprintf(" (it lost a peer: %d more while cut off from most members)", islands)
		}
		t.Logf("%s sent QUIC packets to %d of %d addresses the fake member named%s", n.cfg.Name, hit, k, why)
		if hit > most {
			t.Errorf("%s dialled %d of the %d addresses a member without a certificate named, want at most %d%s", n.cfg.Name, hit, k, most, why)
		}
	}
}

// forgeMesh starts nodes with discovery on loopback, joining through the
// first, and returns them.
func forgeMesh(t *testing.T, c *cluster, key []byte, names ...string) []*Node {
	t.Helper()
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, TargetLinks: 2, MaxLinks: 4, Interval: 500 * time.Millisecond}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	defer func() { c.tweak = nil }()
	var nodes []*Node
	for _, name := range names {
		n := c.add(name)
		if seed == "" {
			seed = n.Status().GossipAddr
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// forgedDead is a memberlist dead message about node at incarnation inc,
// as one UDP packet encrypted under key (memberlist's encryption version
// 1, no label).
func forgedDead(t *testing.T, node string, inc uint32, key []byte) []byte {
	t.Helper()
	return forgedDeadFrom(t, node, "nobody", inc, key)
}

// forgedDeadFrom is forgedDead with from as the message's sender: a
// dead message whose sender is the node itself is a leave.
func forgedDeadFrom(t *testing.T, node, from string, inc uint32, key []byte) []byte {
	t.Helper()
	return gossipPacket(t, 5, struct {
		Incarnation uint32
		Node        string
		From        string
	}{inc, node, from}, key)
}

// forgedAlive is a memberlist alive message about node at its gossip
// address addr, with meta and incarnation inc, as one UDP packet.
func forgedAlive(t *testing.T, node, addr string, inc uint32, meta, key []byte) []byte {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return gossipPacket(t, 4, gossipAlive{inc, node, []byte(ua.IP.To4()), uint16(ua.Port), meta, []uint8{1, 5, 2, 0, 0, 0}}, key)
}

// gossipPacket encodes a memberlist message of type kind and encrypts it
// under key (nil: not encrypted).
func gossipPacket(t *testing.T, kind byte, msg any, key []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(kind)
	if err := codec.NewEncoder(&buf, forgeHandle).Encode(msg); err != nil {
		t.Fatal(err)
	}
	if key == nil {
		return buf.Bytes()
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	return gcm.Seal(append([]byte{1}, nonce...), nonce, buf.Bytes(), nil)
}

// heardFrom reports whether a QUIC connection attempt came from addr.
func (s *udpSink) heardFrom(addr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts[addr]) > 0
}

// fakeMeta is the memberlist delegate of a member that sets its own
// metadata.
// fakeMemberlist is a memberlist of the attacker's own, as name on
// loopback with the gossip key, saying fake's metadata, until the test
// ends.
func fakeMemberlist(t *testing.T, name string, key []byte, fake *fakeMeta) *memberlist.Memberlist {
	t.Helper()
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = name, "127.0.0.1", 0
	mc.SecretKey = key
	mc.LogOutput = io.Discard
	mc.Delegate = fake
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	return ml
}

type fakeMeta struct {
	mu   sync.Mutex
	meta []byte
}

func (f *fakeMeta) set(meta []byte) { f.mu.Lock(); f.meta = meta; f.mu.Unlock() }
func (f *fakeMeta) NodeMeta(int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.meta
}
func (*fakeMeta) NotifyMsg([]byte)                {}
func (*fakeMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (*fakeMeta) LocalState(bool) []byte          { return nil }
func (*fakeMeta) MergeRemoteState([]byte, bool)   {}

// NotifyAlive refuses the alive messages no node of the mesh sends, so
// that memberlist neither takes their metadata nor raises the member's
// incarnation to theirs, and takes every other.
func TestAliveWithMetadataNoNodeSendsRefused(t *testing.T) {
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, bytes.Repeat([]byte{7}, 32), "a", "b")
	a := nodes[0]
	waitFor(t, "a to know b", time.Minute, func() bool { return len(a.Members()) == 2 })
	good, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	for _, tc := range []struct {
		name, member string
		meta         []byte
		refused      bool
	}{
		{"well-formed, for a member not known yet", "newcomer", good, false},
		{"this node's own, empty", "a", nil, false},
		{"empty, for a member not known yet", "newcomer2", nil, true},
		{"empty, for a known member", "b", nil, true},
		{"no link address", "b", []byte(`{"link":"","mesh":"test"}`), true},
		{"another mesh", "b", []byte(`{"link":"127.0.0.1:9","mesh":"other"}`), true},
		{"not JSON", "b", []byte("\x00garbage"), true},
	} {
		err := a.disco.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: tc.member, Meta: tc.meta})
		if refused := err != nil; refused != tc.refused || (refused && !errors.Is(err, errBadMeta)) {
			t.Errorf("%s: NotifyAlive = %v, want refused %v (errBadMeta)", tc.name, err, tc.refused)
		}
	}
}

// A forger who names silent addresses for an honest member gets the
// member's failed dials counted, but the ban that follows covers only
// addresses that never proved the member: its proven address stays
// dialled, and a link that proves it ends the ban.
func TestForgedAddressesDoNotBanAMemberAtItsProvenAddress(t *testing.T) {
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, bytes.Repeat([]byte{7}, 32), "a", "b")
	d, real := nodes[0].disco, nodes[1].disco.linkAddr()
	waitFor(t, "a to have proven b's address", time.Minute, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.proven[real] == "b"
	})
	const forged = "127.0.0.1:9"
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for range unprovenDials { // dials to the forged address, failed
		d.failedUnprovenLocked("b", now)
	}
	if !d.memberBannedLocked("b", forged, now) {
		t.Errorf("b is still dialled at unproven addresses after %d failed dials there", unprovenDials)
	}
	if d.memberBannedLocked("b", real, now) {
		t.Errorf("failed dials at a forged address banned b at its proven address %s", real)
	}
	d.proveLocked(real, "b", time.Now())
	if d.memberBannedLocked("b", forged, now) {
		t.Error("a link proving b did not end its ban")
	}
}

// A push-pull naming more made-up members than the member table holds:
// beyond the bound NotifyAlive refuses new names, so memberlist does not
// keep them either, while members already known are still taken.
func TestAliveBeyondMemberBoundRefused(t *testing.T) {
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, bytes.Repeat([]byte{7}, 32), "a", "b")
	a := nodes[0]
	waitFor(t, "a to know b", time.Minute, func() bool { return len(a.Members()) == 2 })
	good, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	d := a.disco
	d.mu.Lock()
	var filler []string
	for i := 0; len(d.members) < maxMembers; i++ {
		name := fmt.Sprintf("filler-%d", i)
		d.members[name] = gossipMember{}
		filler = append(filler, name)
	}
	d.mu.Unlock()
	newErr := d.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: "newcomer", Meta: good})
	knownErr := d.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: "filler-0", Meta: good})
	d.mu.Lock()
	for _, name := range filler {
		delete(d.members, name)
	}
	d.mu.Unlock()
	if !errors.Is(newErr, errMembersFull) {
		t.Errorf("a new member with %d known: NotifyAlive = %v, want errMembersFull", maxMembers, newErr)
	}
	if knownErr != nil {
		t.Errorf("a known member with the table full: NotifyAlive = %v, want taken", knownErr)
	}
	if err := d.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: "newcomer", Meta: good}); err != nil {
		t.Errorf("a new member once there is room again: NotifyAlive = %v, want taken", err)
	}
}

// loopback4 is the gossip address, as memberlist carries it (4 bytes),
// of the members tests hand NotifyAlive.
var loopback4 = net.IPv4(127, 0, 0, 1).To4()
