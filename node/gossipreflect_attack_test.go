package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// forgedPing is memberlist's ping message (type 0) asking for the ack at
// the address to (its SourceAddr and SourcePort).
func forgedPing(t *testing.T, seq uint32, to *net.UDPAddr) []byte {
	t.Helper()
	return gossipPacket(t, 0, struct {
		SeqNo      uint32
		Node       string
		SourceAddr []byte
		SourcePort uint16
		SourceNode string
	}{seq, "", to.IP.To4(), uint16(to.Port), "victim"}, nil)
}

// TestAttackGossipPingRequestReflection: a stranger with no gossip key
// sends a node ping requests (type 1) for a member, asking for a nack and
// naming a victim's address as where to answer. memberlist pings the
// target and sends the ack it relays, or the nack when no ack comes, to
// the address the request names: before, 5 requests for a silent target
// made the node send the victim 5 nacks. A member's request names the
// address it sends from: the victim must get nothing, and the stranger
// the answers, where the requests came from: the acks of a live member
// and the nacks of a member that went silent (its gossip stopped without
// leaving, still listed alive).
func TestAttackGossipPingRequestReflection(t *testing.T) {
	mute := mutableGossip(t)
	c, nodes := gossipNodes(t, "b", "a")
	d, member := nodes[0], nodes[1]
	seed := d.Status().GossipAddr
	c.tweak = func(cfg *Config) {
		gossipJoining(&seed)(cfg)
		cfg.Discovery.BindAddr, cfg.Discovery.Transport = mute.bind, mute
	}
	silent := c.add("s")
	waitVerified(t, []*Node{d, member, silent})
	victim, conn := forgerConn(t), forgerConn(t)
	got, _ := countDatagrams(victim)
	answered, _ := countDatagrams(conn)
	va := victim.LocalAddr().(*net.UDPAddr)
	to := gossipAddr(t, d)
	const sent = 5
	request := func(seq uint32, target *Node) {
		ta := gossipAddr(t, target)
		req := gossipPacket(t, gmIndirectPing, gossipIndirectPing{SeqNo: seq, Target: ta.IP.To4(), Port: uint16(ta.Port),
			Node: target.cfg.Name, Nack: true, SourceAddr: va.IP.To4(), SourcePort: uint16(va.Port), SourceNode: "victim"}, nil)
		if _, err := conn.WriteToUDP(req, to); err != nil {
			t.Fatal(err)
		}
	}
	for seq := range uint32(sent) {
		request(seq, member)
	}
	waitFor(t, "the acks", 10*time.Second, func() bool { return answered.Load()+got.Load() >= sent })
	acks := answered.Load()
	mute.muted.Store(true)
	if !d.disco.guard.members.has(unmapped(gossipAddr(t, silent))) {
		t.Fatal("the silent member's gossip address is not a member's before the requests")
	}
	for seq := range uint32(sent) {
		request(sent+seq, silent)
	}
	waitFor(t, "the nacks", 10*time.Second, func() bool { return answered.Load()+got.Load() >= acks+sent })
	time.Sleep(time.Second)
	t.Logf("a stranger sent %d ping requests for a live member and %d for a silent one, naming a victim's address: the victim got %d datagrams, the stranger %d (%d acks)",
		sent, sent, got.Load(), answered.Load(), acks)
	if got.Load() > 0 || acks < sent || answered.Load() < 2*sent {
		t.Errorf("the victim got %d datagrams for the stranger's %d ping requests, the stranger %d (%d acks)", got.Load(), 2*sent, answered.Load(), acks)
	}
}

// TestAttackGossipPingRequestFakeMember: a stranger with no gossip key
// has a node take an alive message about a made-up member with unsigned
// metadata at a victim's address, then sends it 40 ping requests for
// that member. Before, the made-up member's address counted as a
// member's: the node pinged the victim for each request (43 datagrams in
// 2 s in the run docs/SECURITY.md cites, 47 in another). Only members
// whose signed metadata verified count: the victim gets only the nodes'
// own probes of the made-up member (10 in that run, 6 to 7 in others).
func TestAttackGossipPingRequestFakeMember(t *testing.T) {
	d, _ := gossipPair(t)
	victim, conn := forgerConn(t), forgerConn(t)
	got, _ := countDatagrams(victim)
	va, ca := victim.LocalAddr().(*net.UDPAddr), conn.LocalAddr().(*net.UDPAddr)
	to := gossipAddr(t, d)
	meta, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	if _, err := conn.WriteToUDP(forgedAlive(t, "ghost", va.String(), 1, meta, nil), to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the made-up member", 10*time.Second, func() bool {
		for _, m := range d.disco.ml.Members() {
			if m.Name == "ghost" {
				return true
			}
		}
		return false
	})
	before := got.Load()
	const sent = 40
	for seq := range uint32(sent) {
		req := gossipPacket(t, gmIndirectPing, gossipIndirectPing{SeqNo: 100 + seq, Target: va.IP.To4(), Port: uint16(va.Port),
			Node: "ghost", SourceAddr: ca.IP.To4(), SourcePort: uint16(ca.Port), SourceNode: "stranger"}, nil)
		if _, err := conn.WriteToUDP(req, to); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	t.Logf("after %d ping requests for a made-up member at the victim's address: the victim got %d datagrams (%d before)", sent, got.Load(), before)
	if d.disco.guard.members.has(unmapped(va)) || got.Load()-before >= sent/2 {
		t.Errorf("ping requests for a made-up member at the victim's address reached the victim: %d datagrams for %d requests", got.Load()-before, sent)
	}
}

// unmapped is a as the guard keys addresses: IPv4 unmapped.
func unmapped(a *net.UDPAddr) netip.AddrPort {
	return netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), a.AddrPort().Port())
}

// gossipAddr is n's gossip address.
func gossipAddr(t *testing.T, n *Node) *net.UDPAddr {
	t.Helper()
	a, err := net.ResolveUDPAddr("udp", n.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAttackGossipPingRequestAnyTarget: a stranger with no gossip key
// sends a node ping requests (type 1) whose target is a victim's address,
// no member's. memberlist pings the target a request names, whatever it
// is: before, the victim got a ping of the node's for each request (5 of
// 5). Members ask only about members: the victim must get nothing, while
// requests for a member are still relayed (the stranger gets the acks).
//
// memberlist handles the datagrams of its socket one after another and
// sends the ping a request asks for before it takes the next, so the ack
// of a request for the member sent after the victim's requests comes once
// each of those was handled: pinged or dropped. The node relays an ack
// only if the member answered within memberlist's probe timeout (500 ms),
// which a loaded machine can miss: the stranger asks again, once a
// second, until an ack comes, rather than counting on each of a fixed
// number being relayed in time.
func TestAttackGossipPingRequestAnyTarget(t *testing.T) {
	d, member := gossipPair(t)
	victim, conn := forgerConn(t), forgerConn(t)
	got, _ := countDatagrams(victim)
	answered, _ := countDatagrams(conn)
	va, ta, ca := victim.LocalAddr().(*net.UDPAddr), gossipAddr(t, member), conn.LocalAddr().(*net.UDPAddr)
	to := gossipAddr(t, d)
	request := func(seq uint32, target *net.UDPAddr, node string) {
		req := gossipPacket(t, gmIndirectPing, gossipIndirectPing{SeqNo: seq, Target: target.IP.To4(), Port: uint16(target.Port),
			Node: node, SourceAddr: ca.IP.To4(), SourcePort: uint16(ca.Port), SourceNode: "stranger"}, nil)
		if _, err := conn.WriteToUDP(req, to); err != nil {
			t.Fatal(err)
		}
	}
	const sent = 5
	for seq := range uint32(sent) {
		request(seq, va, "victim")
	}
	asked := 0
	deadline := time.Now().Add(patience)
	for answered.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no ack of %d ping requests for a member in %v (the victim got %d datagrams)", asked, patience, got.Load())
		}
		request(uint32(sent+asked), ta, member.cfg.Name)
		asked++
		for end := time.Now().Add(time.Second); answered.Load() == 0 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // a ping the node sent the victim is read
	t.Logf("a stranger sent %d ping requests for a victim's address, then %d for a member's: the victim got %d datagrams, the stranger %d acks",
		sent, asked, got.Load(), answered.Load())
	if got.Load() > 0 {
		t.Errorf("the victim, no member, got %d datagrams for the stranger's %d ping requests naming it", got.Load(), sent)
	}
}

// countDatagrams counts the datagrams c receives, and their bytes, until
// it is closed.
func countDatagrams(c *net.UDPConn) (datagrams, bytes *atomic.Int64) {
	datagrams, bytes = new(atomic.Int64), new(atomic.Int64)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			datagrams.Add(1)
			bytes.Add(int64(n))
		}
	}()
	return datagrams, bytes
}

// TestAttackGossipPingReflection: a stranger with no gossip key (the
// default is none) sends a node datagrams of pings that name a victim's
// address as where to answer. memberlist answers each ping with an ack
// carrying the node's coordinate, at the address the ping names: a
// datagram of many pings made the node send the victim a datagram per
// ping, several times the bytes the stranger sent, and a datagram of one
// ping one ack, larger than the ping. A member's ping names the address
// it sends from: the victim must get nothing, and a ping alone is still
// answered, where it came from.
func TestAttackGossipPingReflection(t *testing.T) {
	d := plainGossipNode(t, "d")
	victim, conn := forgerConn(t), forgerConn(t)
	got, gotBytes := countDatagrams(victim)
	answered, _ := countDatagrams(conn)
	va := victim.LocalAddr().(*net.UDPAddr)
	seq := uint32(0)
	datagram, pings := aliveDatagram(func() []byte { seq++; return forgedPing(t, seq, va) })
	to, err := net.ResolveUDPAddr("udp", d.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	const sent = 20
	for range sent {
		if _, err := conn.WriteToUDP(datagram, to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	single := forgedPing(t, seq+1, va)
	if _, err := conn.WriteToUDP(single, to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ack of a ping alone, where it came from", 10*time.Second, func() bool { return answered.Load() > 0 })
	time.Sleep(time.Second)
	t.Logf("a stranger sent %d datagrams of %d pings (%d bytes) and one of one ping (%d bytes), naming a victim's address: the victim got %d datagrams, %d bytes",
		sent, pings, sent*len(datagram), len(single), got.Load(), gotBytes.Load())
	if got.Load() > 0 {
		t.Errorf("the victim got %d datagrams, %d bytes, for the stranger's %d", got.Load(), gotBytes.Load(), sent+1)
	}
}

// mutedGossip is a gossip transport whose datagrams, in and out, can be
// dropped (muted): its node goes silent without leaving. handed counts
// the datagrams it handed memberlist, which takes them one at a time from
// an unbuffered channel and handles each before it takes the next (as
// the gossip guard between them does).
type mutedGossip struct {
	*memberlist.NetTransport
	bind    string
	muted   atomic.Bool
	handed  atomic.Int64
	packets chan *memberlist.Packet
	done    chan struct{}
	stopped sync.WaitGroup
}

// mutableGossip is a mutedGossip on a free port of 127.0.0.1.
func mutableGossip(t *testing.T) *mutedGossip {
	t.Helper()
	nt, bind := loopbackGossip(t)
	m := &mutedGossip{NetTransport: nt, bind: bind, packets: make(chan *memberlist.Packet), done: make(chan struct{})}
	m.stopped.Go(func() {
		for {
			select {
			case p := <-nt.PacketCh():
				if m.muted.Load() {
					continue
				}
				select {
				case m.packets <- p:
					m.handed.Add(1)
				case <-m.done:
					return
				}
			case <-m.done:
				return
			}
		}
	})
	return m
}

func (m *mutedGossip) Shutdown() error {
	close(m.done)
	m.stopped.Wait()
	// NetTransport's reader blocks handing a datagram to PacketCh until
	// one takes it, and its Shutdown waits for the reader: take them
	// meanwhile, or a datagram that came in after the forwarder stopped
	// hangs Close.
	stop, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-m.NetTransport.PacketCh():
			case <-stop:
				return
			}
		}
	}()
	err := m.NetTransport.Shutdown()
	close(stop)
	<-drained
	return err
}

func (m *mutedGossip) PacketCh() <-chan *memberlist.Packet { return m.packets }

func (m *mutedGossip) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if m.muted.Load() {
		return time.Now(), nil
	}
	return m.NetTransport.WriteToAddress(b, a)
}

func (m *mutedGossip) WriteTo(b []byte, addr string) (time.Time, error) {
	return m.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// loopbackGossip is memberlist's transport on a free port of 127.0.0.1,
// and its address.
//
// The transport takes a TCP port the kernel picks and then the same port
// for UDP, which another socket (of this process or another) may hold:
// it then tries again, on another port, rather than fail the test. A
// port chosen and released beforehand could be taken by anyone in
// between.
func loopbackGossip(t *testing.T) (*memberlist.NetTransport, string) {
	t.Helper()
	var (
		nt  *memberlist.NetTransport
		err error
	)
	for range 20 {
		if nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}, BindPort: 0}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no port of 127.0.0.1 free for both TCP and UDP gossip: %v", err)
	}
	return nt, fmt.Sprintf("127.0.0.1:%d", nt.GetAutoBindPort())
}
