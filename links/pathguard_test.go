package links

import (
	"net"
	"testing"
	"time"
)

// longPkt is a long-header packet of QUIC v1 of type typ (0 Initial, 2
// Handshake) to dcid with an empty source connection ID, an empty token
// for an Initial, and a payload of size bytes.
func longPkt(typ byte, dcid []byte, size int) []byte {
	b := []byte{0xc0 | typ<<4, 0, 0, 0, 1, byte(len(dcid))}
	b = append(b, dcid...)
	b = append(b, 0) // source connection ID: empty
	if typ == 0 {
		b = append(b, 0) // token: empty
	}
	b = append(b, 0x40|byte(size>>8), byte(size)) // Length, 2 bytes
	return append(b, make([]byte, size)...)
}

// guardAddrs is a guard's table with an address of each kind: counted,
// pending (sent the connection ID ours in a handshake packet) and
// unknown.
func guardAddrs(t *testing.T) (p *peerAddrs, counted, pending, unknown *net.UDPAddr, ours []byte) {
	p = newPeerAddrs()
	counted = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000}
	pending = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1001}
	unknown = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1002}
	p.register(counted).reach()
	p.register(pending)
	id, err := p.own.GenerateConnectionID()
	if err != nil {
		t.Fatal(err)
	}
	ours = id.Bytes()
	p.sent(append([]byte{0xe0, 0, 0, 0, 1, 0, byte(len(ours))}, append(ours, make([]byte, 20)...)...), pending)
	return p, counted, pending, unknown, ours
}

// TestPathGuardReadsCoalescedPackets: the guard reads a datagram as
// quic-go does, long-header packets cut by their Length and a
// short-header packet after them. What it hands QUIC of a datagram from
// an address with no connection is its long-header packets only, the
// short-header packet behind them cut off and counted; from a pending
// address, all of it once one of the long-header packets is addressed to
// a connection ID the node sent there (a peer coalescing its last
// handshake packet with its first 1-RTT one); from a counted address, all
// of it. A datagram whose long-header part does not parse keeps only
// what parsed, unless its address is counted.
func TestPathGuardReadsCoalescedPackets(t *testing.T) {
	p, counted, pending, unknown, ours := guardAddrs(t)
	other := []byte{9, 9, 9, 9}

	initial := longPkt(0, other, 30)
	handshake := longPkt(2, other, 20)
	answering := longPkt(2, ours, 20)
	short := append([]byte{0x43}, append(other, make([]byte, 30)...)...)
	cat := func(b ...[]byte) []byte {
		var out []byte
		for _, x := range b {
			out = append(out, x...)
		}
		return out
	}
	for _, c := range []struct {
		what  string
		pkt   []byte
		addr  *net.UDPAddr
		want  int
		drops uint64
	}{
		{"Initial and Handshake packets", cat(initial, handshake), unknown, len(initial) + len(handshake), 0},
		{"a short-header packet behind a Handshake packet, from an unknown address", cat(handshake, short), unknown, len(handshake), 1},
		{"a short-header packet behind two long-header packets, from an unknown address", cat(initial, handshake, short), unknown, len(initial) + len(handshake), 1},
		{"a short-header packet behind a Handshake packet, from a counted address", cat(handshake, short), counted, len(handshake) + len(short), 0},
		{"a Handshake packet whose Length runs past the datagram", cat([]byte{0xe0, 0, 0, 0, 1, 4, 9, 9, 9, 9, 0, 0x40, 0xff}, short), unknown, 0, 0},
		{"a Handshake packet, then one that does not parse", cat(handshake, []byte{0xe0, 0, 0, 0, 1}), unknown, len(handshake), 0},
		{"a Handshake packet, then one that does not parse, from a counted address", cat(handshake, []byte{0xe0, 0, 0, 0, 1}), counted, len(handshake) + 5, 0},
		{"a packet of an unknown version, then a short-header packet", cat([]byte{0xc0, 0x0a, 0x1a, 0x2a, 0x3a, 4, 9, 9, 9, 9, 0}, short), unknown, 11 + len(short), 0},
		{"a Version Negotiation packet, then a short-header packet", cat([]byte{0x80, 0, 0, 0, 0, 4, 9, 9, 9, 9, 0}, short), unknown, 11 + len(short), 0},
		{"a short-header packet behind a Handshake packet to an ID the node sent the pending address", cat(answering, short), pending, len(answering) + len(short), 0},
	} {
		d := p.dropped.Load()
		got, _ := p.admitAt(c.pkt, addrPort(c.addr))
		if got != c.want || p.dropped.Load()-d != c.drops {
			t.Errorf("%s: QUIC gets %d bytes of %d, %d counted dropped; want %d, %d", c.what, got, len(c.pkt), p.dropped.Load()-d, c.want, c.drops)
		}
	}
	coalesced := cat(initial, handshake, short)
	if n := testing.AllocsPerRun(200, func() { p.admitAt(coalesced, addrPort(unknown)) }); n != 0 {
		t.Errorf("coalesced packets: %.1f allocations per datagram", n)
	}
	// The pending address answered: its short-header packets pass on
	// their own.
	if pa := p.pending[addrPort(pending)]; pa == nil || !pa.answered {
		t.Error("the pending address not answered by a Handshake packet to an ID the node sent it, coalesced with a short-header packet")
	}
}

// handshakeFrom is a Handshake packet of QUIC v1 whose source connection
// ID is scid, as the node writes them.
func handshakeFrom(scid []byte) []byte {
	return append(append([]byte{0xe0, 0, 0, 0, 1, 0, byte(len(scid))}, scid...), 0x40, 20)
}

// TestPathGuardNotesOwnConnectionIDsOnly: a pending address is noted as
// sent a connection ID only if the node made it (its ConnectionIDGenerator)
// within the handshake's time, and sent it there first: not an ID of a
// Version Negotiation packet or of any packet whose source connection ID
// the node did not make (whoever wrote the packet it answers chose it),
// not one the node sent another address first (quic-go sends a closed
// connection's last packet to the source of any packet that arrives for
// it), and not one made longer ago than the time it is kept. The IDs
// remembered are at most maxOwnIDs, the newest.
func TestPathGuardNotesOwnConnectionIDsOnly(t *testing.T) {
	p, _, pending, unknown, ours := guardAddrs(t)
	has := func(id []byte) bool {
		p.mu.RLock()
		defer p.mu.RUnlock()
		return p.pending[addrPort(pending)].has(id)
	}
	if !has(ours) {
		t.Fatal("a connection ID the node made, sent to a pending address, not noted")
	}
	chosen := []byte{0xc4, 0x05, 0xe0, 0x01}
	p.sent(handshakeFrom(chosen), pending)
	vn := handshakeFrom(chosen)
	copy(vn[1:5], []byte{0, 0, 0, 0})
	p.sent(vn, pending)
	if has(chosen) {
		t.Error("a connection ID the node did not make noted as sent to a pending address")
	}
	made, err := p.own.GenerateConnectionID()
	if err != nil {
		t.Fatal(err)
	}
	p.sent(handshakeFrom(made.Bytes()), unknown)
	p.sent(handshakeFrom(made.Bytes()), pending)
	if has(made.Bytes()) {
		t.Error("a connection ID the node sent another address first noted as sent to a pending address")
	}

	g := newOwnIDs(50 * time.Millisecond)
	first, _ := g.GenerateConnectionID()
	time.Sleep(60 * time.Millisecond)
	if g.claim(first.Bytes(), addrPort(pending)) {
		t.Error("a connection ID made longer ago than the time it is kept taken as the node's")
	}
	g = newOwnIDs(time.Minute)
	first, _ = g.GenerateConnectionID()
	var last []byte
	for range maxOwnIDs {
		id, _ := g.GenerateConnectionID()
		last = id.Bytes()
	}
	if len(g.at) > maxOwnIDs || len(g.ring) > maxOwnIDs {
		t.Errorf("%d connection IDs remembered (%d in the ring), want at most %d", len(g.at), len(g.ring), maxOwnIDs)
	}
	if g.claim(first.Bytes(), addrPort(pending)) || !g.claim(last, addrPort(pending)) {
		t.Error("the oldest connection ID kept, or the newest forgotten, beyond maxOwnIDs")
	}
}

// TestPathGuardEndedAddressInGrace: the address of a connection that
// ended passes short-header packets, uncounted, for the grace (the
// peer's last packets in flight), then is dropped and counted as any
// other; a pending connection that ends leaves no grace; the addresses
// in grace are at most maxEnded.
func TestPathGuardEndedAddressInGrace(t *testing.T) {
	p := newPeerAddrs()
	p.grace = 200 * time.Millisecond
	addr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000}
	short := append([]byte{0x43, 9, 9, 9, 9}, make([]byte, 30)...)
	admitted := func() (bool, uint64) {
		d := p.dropped.Load()
		n, _ := p.admitAt(short, addrPort(addr))
		return n == len(short), p.dropped.Load() - d
	}
	r := p.register(addr)
	for range pendingShort {
		admitted()
	}
	r.end()
	if ok, d := admitted(); ok || d != 1 {
		t.Fatalf("after a pending connection ended: admitted %v, %d counted; want dropped and counted", ok, d)
	}
	r = p.register(addr)
	r.reach()
	r.end()
	if ok, d := admitted(); !ok || d != 0 {
		t.Fatalf("after a counted connection ended: admitted %v, %d counted; want admitted, uncounted", ok, d)
	}
	time.Sleep(250 * time.Millisecond)
	if ok, d := admitted(); ok || d != 1 {
		t.Fatalf("after the grace: admitted %v, %d counted; want dropped and counted", ok, d)
	}
	p.mu.Lock()
	for i := range maxEnded + 10 {
		p.graceLocked(addrPort(&net.UDPAddr{IP: net.IPv4(10, 0, byte(i>>8), byte(i)), Port: 1}), time.Now())
	}
	n := len(p.ended)
	p.mu.Unlock()
	if n > maxEnded {
		t.Errorf("%d addresses in grace, want at most %d", n, maxEnded)
	}
}
