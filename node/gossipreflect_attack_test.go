package node

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
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

// TestAttackGossipPingReflection: a stranger with no gossip key (the
// default is none) sends a node datagrams of pings that name a victim's
// address as where to answer. memberlist answers each ping with an ack
// carrying the node's coordinate, at the address the ping names: a
// datagram of many pings made the node send the victim a datagram per
// ping, several times the bytes the stranger sent. No member sends more
// than one ping in a datagram, and the ack of one ping is what the node
// owes; the victim must get at most one datagram per datagram the
// stranger sent. (A datagram of one ping is answered: that reflection,
// one datagram for one, is left.)
func TestAttackGossipPingReflection(t *testing.T) {
	d := plainGossipNode(t, "d")
	victim := forgerConn(t)
	var got, gotBytes atomic.Int64
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := victim.ReadFromUDP(buf)
			if err != nil {
				return
			}
			got.Add(1)
			gotBytes.Add(int64(n))
		}
	}()
	va := victim.LocalAddr().(*net.UDPAddr)
	seq := uint32(0)
	datagram, pings := aliveDatagram(func() []byte { seq++; return forgedPing(t, seq, va) })
	conn := forgerConn(t)
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
	// One ping alone is answered, as a member's probe is.
	single := forgedPing(t, seq+1, va)
	if _, err := conn.WriteToUDP(single, to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ack of a ping alone", 10*time.Second, func() bool { return got.Load() > 0 })
	time.Sleep(time.Second)
	t.Logf("a stranger sent %d datagrams of %d pings (%d bytes) and one of one ping: the victim got %d datagrams, %d bytes (%.1f times the bytes sent)",
		sent, pings, sent*len(datagram), got.Load(), gotBytes.Load(), float64(gotBytes.Load())/float64(sent*len(datagram)))
	if got.Load() > sent+1 {
		t.Errorf("the victim got %d datagrams for the stranger's %d", got.Load(), sent+1)
	}
}
