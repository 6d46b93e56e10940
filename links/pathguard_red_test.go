package links

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// This file attacks the path guard (pathguard.go): the filter that hands
// QUIC a short-header packet only from the address of a connection whose
// peer showed it receives there.

// handshakeHeader is a long-header Handshake packet of QUIC v1 to dcid
// whose payload (20 bytes) decrypts with no key the node holds: quic-go
// drops it and goes on with the rest of the datagram, a coalesced
// packet (RFC 9000, section 12.2).
func handshakeHeader(dcid []byte) []byte {
	b := []byte{0xe0, 0, 0, 0, 1, byte(len(dcid))}
	b = append(b, dcid...)
	b = append(b, 0)        // source connection ID: empty
	b = append(b, 0x40, 20) // Length, a 2-byte varint
	return append(b, make([]byte, 20)...)
}

// reflectAt has the sealer's connection send the node packets carrying a
// PATH_CHALLENGE each (wrap may change each datagram), written from the
// socket from, and waits until got stopped growing for quiet (at most 5
// s). It returns the bytes sent and what got counted meanwhile.
func reflectAt(t *testing.T, target *node, s *shortSealer, dcid []byte, from net.PacketConn, got *atomic.Int64, packets int, wrap func([]byte) []byte, quiet time.Duration) (sent, recv int64) {
	t.Helper()
	before := got.Load()
	for i := range packets {
		challenge := make([]byte, 9)
		challenge[0] = 0x1a // PATH_CHALLENGE
		binary.BigEndian.PutUint64(challenge[1:], uint64(i)+1)
		pkt := s.seal(dcid, 1<<21+uint32(i), challenge)
		if wrap != nil {
			pkt = wrap(pkt)
		}
		if _, err := from.WriteTo(pkt, target.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		sent += int64(len(pkt))
		time.Sleep(time.Millisecond)
	}
	last, since, began := int64(-1), time.Now(), time.Now()
	for time.Since(since) < quiet && time.Since(began) < 5*time.Second {
		if n := got.Load(); n != last {
			last, since = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return sent, got.Load() - before
}

// TestAttackMemberReflectsThroughCoalescedPacket: the guard lets every
// datagram that starts with a long header through (a handshake packet),
// but QUIC reads a datagram as coalesced packets: after a long-header
// packet it drops (a Handshake packet to the member's connection ID,
// whose keys the node dropped), it reads the short-header packet that
// follows. A member that puts a 30-byte Handshake header before each of
// its PATH_CHALLENGEs, written with a third party's source address, has
// the node answer each with a 1200-byte probe there, as before the
// guard. The node must send an address with no connection at most three
// times what it received from there, and count the packets dropped.
func TestAttackMemberReflectsThroughCoalescedPacket(t *testing.T) {
	r := newReflector(t)
	drops := r.target.PathDrops()
	const packets = 200
	sent, got := reflectAt(t, r.target, r.sealer, r.dcid, r.victim, &r.got, packets,
		func(pkt []byte) []byte { return append(handshakeHeader(r.dcid), pkt...) }, time.Second)
	t.Logf("member sent %d packets, %d bytes, as the victim; the node sent the victim %d bytes of short-header packets", packets, sent, got)
	if got > 3*sent {
		t.Fatalf("the node sent an address with no connection %d bytes for %d it received from there (%.0f×): a short-header packet coalesced after a handshake packet passes the path guard",
			got, sent, float64(got)/float64(sent))
	}
	if d := r.target.PathDrops() - drops; d < packets-pendingShort {
		t.Fatalf("the node counted %d packets dropped from an address with no connection, want at least %d of the member's %d", d, packets-pendingShort, packets)
	}
}

// coalescingConn puts a Handshake header to the same connection ID before
// every short-header packet written (quic-go's connection IDs are 4
// bytes). It is a UDP socket, as quic-go wants of a path it switches to.
type coalescingConn struct{ *net.UDPConn }

func coalesced(p []byte) []byte {
	if len(p) > 5 && p[0]&0x80 == 0 {
		return append(handshakeHeader(p[1:5]), p...)
	}
	return p
}

func (c *coalescingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(coalesced(p), addr)
	return min(n, len(p)), err
}

func (c *coalescingConn) WriteMsgUDP(p, oob []byte, addr *net.UDPAddr) (int, int, error) {
	n, oobn, err := c.UDPConn.WriteMsgUDP(coalesced(p), oob, addr)
	return min(n, len(p)), oobn, err
}

// TestAttackMemberMovesItsLinkThroughCoalescedPackets: as
// TestAttackMemberMovesItsLinkToAnotherAddress, with each packet of the
// new path coalesced after a Handshake packet. The node must keep the
// link at the address it was established from.
func TestAttackMemberMovesItsLinkThroughCoalescedPackets(t *testing.T) {
	ca := testCA(t, "m")
	target := newNode(t, issue(t, ca, "n"), tolerant)
	m := newNode(t, issue(t, ca, "m"), tolerant)
	l := dial(t, m, target)
	target.rec.waitEvent(t, "up", patience)
	from := m.LocalAddr().String()

	other, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: &coalescingConn{UDPConn: other.(*net.UDPConn)}}
	defer func() {
		_ = tr.Close()
		_ = other.Close()
	}()
	path, err := l.(*quicLink).conn.AddPath(tr)
	if err != nil {
		t.Fatalf("add path: %v", err)
	}
	defer path.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := path.Probe(ctx); err == nil {
		if err := path.Switch(); err != nil {
			t.Fatalf("switch: %v", err)
		}
		_ = l.SendRouting([]byte("moved"))
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && target.Link("m").RemoteAddr().String() == from {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := target.Link("m"); got == nil || got.RemoteAddr().String() != from {
		t.Fatalf("the node moved the member's link from %s to %v, an address it never handshook from, through packets coalesced after a handshake packet", from, got.RemoteAddr())
	}
}

// versionProbe is a 1200-byte long-header packet of an unknown version
// with connection IDs dcid and scid: a node answers it with a Version
// Negotiation packet whose source connection ID is dcid.
func versionProbe(dcid, scid []byte) []byte {
	b := []byte{0xc0, 0x0a, 0x1a, 0x2a, 0x3a, byte(len(dcid))}
	b = append(b, dcid...)
	b = append(b, byte(len(scid)))
	b = append(b, scid...)
	return append(b, make([]byte, 1200-len(b))...)
}

// pendingState is what the guard holds for addr: whether it is pending,
// answered, and whether id is among the connection IDs it sent there.
func pendingState(n *node, addr net.Addr, id []byte) (pending, answered, has bool) {
	n.paths.mu.RLock()
	defer n.paths.mu.RUnlock()
	pa := n.paths.pending[addrPort(addr)]
	if pa == nil {
		return false, false, false
	}
	return true, pa.answered, pa.has(id)
}

// TestAttackVersionNegotiationAnswersForVictim: a pending address opens
// to all short-header packets once a handshake packet from there is
// addressed to a connection ID the node sent there. The guard takes as
// such an ID the source connection ID of every long-header packet the
// node writes, and a Version Negotiation packet's is the destination
// connection ID of the packet it answers: whoever can write packets with
// the victim's source address chooses it. A member has the node admit one
// spoofed first packet from the victim (as in
// TestAttackMemberReflectsBehindSpoofedFirstPacket), sends from there a
// packet of an unknown version to an ID of its choice, then any
// long-header packet to that ID: the victim's address counts as answered
// and the member's PATH_CHALLENGEs written as the victim are answered
// there, 1200 bytes each, for the spoofed handshake's life. The address
// must stay closed: at most pendingShort of them pass.
func TestAttackVersionNegotiationAnswersForVictim(t *testing.T) {
	r := newReflector(t)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	capture := &firstPacket{PacketConn: udp, got: make(chan []byte, 1)}
	tr := &quic.Transport{Conn: capture}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = tr.Dial(ctx, r.target.LocalAddr(), &tls.Config{NextProtos: []string{ALPN}, ServerName: "circuitmesh"}, nil)
	}()
	initial := <-capture.got
	cancel()
	_ = tr.Close()
	if _, err := r.victim.WriteTo(initial, r.target.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to admit the spoofed first packet", patience, func() bool { return r.target.handshakesFrom(r.victim.LocalAddr()) > 0 })

	chosen := []byte{0xc4, 0x05, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x01}
	probe := versionProbe(chosen, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if _, err := r.victim.WriteTo(probe, r.target.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	planted := false
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && !planted {
		_, _, planted = pendingState(r.target, r.victim.LocalAddr(), chosen)
		time.Sleep(5 * time.Millisecond)
	}
	if planted {
		// The same packet, now addressed to an ID "the node sent there".
		if _, err := r.victim.WriteTo(probe, r.target.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, answered, _ := pendingState(r.target, r.victim.LocalAddr(), chosen)
	t.Logf("an ID of the attacker's choice taken as sent to the victim: %v; the victim's address answered: %v", planted, answered)
	r.probe(t, 200)
}

// shortCounter counts the short-header bytes its QUIC stack reads.
type shortCounter struct {
	net.PacketConn
	got atomic.Int64
}

func (c *shortCounter) ReadFrom(p []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(p)
	if err == nil && n > 0 && p[0]&0x80 == 0 {
		c.got.Add(int64(n))
	}
	return n, a, err
}

// TestAttackStrangerReflectsAtNeighbour: TLS takes any certificate (the
// mesh's is checked by the link handshake after it), and the guard counts
// an address from the peer's certificate on. A stranger with a
// certificate of its own CA completes the QUIC handshake, sends no hello,
// and for the link handshake's time (HandshakeTimeout, 5 s) holds the
// keys of a connection to the node: what docs/SECURITY.md leaves to a
// holder of a valid certificate (packets of its connection written with
// the address of another live connection of the node get their
// PATH_CHALLENGEs answered there, 1200 bytes each), a stranger does at an
// honest neighbour of the node. The neighbour must receive at most three
// times what the stranger sent as it.
func TestAttackStrangerReflectsAtNeighbour(t *testing.T) {
	ca := testCA(t, "m")
	target := newNode(t, issue(t, ca, "n"), tolerant)
	hsock, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hconn := &shortCounter{PacketConn: hsock}
	h := newNode(t, issue(t, ca, "h"), func(c *QUICConfig) { c.PacketConn = hconn; tolerant(c) })
	t.Cleanup(func() { _ = hsock.Close() })
	dial(t, h, target)
	target.rec.waitEvent(t, "up", patience)

	// The stranger: any certificate, of a CA the mesh never heard of.
	other := testCA(t, "m")
	ssock, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tap := &tapConn{PacketConn: ssock}
	str := &quic.Transport{Conn: tap}
	t.Cleanup(func() { _ = str.Close(); _ = ssock.Close() })
	keys := &logBuf{}
	conf := &tls.Config{
		Certificates:       []tls.Certificate{issue(t, other, "s").TLSCertificate()},
		InsecureSkipVerify: true,
		NextProtos:         []string{ALPN},
		ServerName:         "circuitmesh",
		MinVersion:         tls.VersionTLS13,
		KeyLogWriter:       keys,
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := str.Dial(ctx, target.LocalAddr(), conf, &quic.Config{})
	if err != nil {
		t.Fatalf("the stranger's QUIC handshake: %v", err)
	}
	defer conn.CloseWithError(0, "")
	var dcid []byte
	waitFor(t, "a short-header packet of the stranger's connection", patience, func() bool {
		dcid = tap.connID()
		return dcid != nil
	})
	secret, ok := clientSecret(keys.String())
	if !ok {
		t.Fatal("no client traffic secret in the key log")
	}
	s, err := newShortSealer(conn.ConnectionState().TLS.CipherSuite, secret)
	if err != nil {
		t.Fatal(err)
	}
	tap.deaf.Store(true)

	const packets = 200
	sent, got := reflectAt(t, target, s, dcid, hsock, &hconn.got, packets, nil, 500*time.Millisecond)
	t.Logf("a stranger sent %d packets, %d bytes, as the node's neighbour; the neighbour read %d bytes of short-header packets meanwhile (its own link's included)", packets, sent, got)
	if got > 3*sent {
		t.Fatalf("the node sent its neighbour %d bytes for %d a stranger without a certificate of the mesh sent as it (%.0f×): the path guard counts an address from any certificate",
			got, sent, float64(got)/float64(sent))
	}
}

