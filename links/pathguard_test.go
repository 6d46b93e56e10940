package links

import (
	"net"
	"testing"
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
func guardAddrs() (p *peerAddrs, counted, pending, unknown *net.UDPAddr, ours []byte) {
	p = newPeerAddrs()
	counted = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000}
	pending = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1001}
	unknown = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1002}
	p.register(counted).reach()
	p.register(pending)
	ours = []byte{1, 2, 3, 4}
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
	p, counted, pending, unknown, ours := guardAddrs()
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
