package links

import (
	"bytes"
	"net"
	"testing"
)

// FuzzAdmitDatagram hands the path guard any datagram, as anyone on the
// network can send one, from an address of each kind (counted, pending,
// unknown): QUIC gets a prefix of it that ends where a long-header packet
// ends (all of it from a counted address), the datagram is not written
// into, an unknown address leaves nothing in the guard's table, and at
// most one packet a datagram is counted dropped.
func FuzzAdmitDatagram(f *testing.F) {
	other := []byte{9, 9, 9, 9}
	short := append([]byte{0x43}, append(other, make([]byte, 30)...)...)
	f.Add(uint8(2), append(longPkt(0, other, 30), longPkt(2, other, 20)...))
	f.Add(uint8(2), append(longPkt(2, other, 20), short...))
	f.Add(uint8(1), append(longPkt(2, other, 20), short...))
	f.Add(uint8(0), append(longPkt(2, other, 20), short...))
	f.Add(uint8(2), []byte{0xe0, 0, 0, 0, 1, 4, 9, 9, 9, 9, 0, 0x40, 0xff})
	f.Add(uint8(2), append([]byte{0xc0, 0x0a, 0x1a, 0x2a, 0x3a, 4, 9, 9, 9, 9, 0}, short...))
	f.Add(uint8(2), append([]byte{0x80, 0, 0, 0, 0, 4, 9, 9, 9, 9, 0}, short...))
	f.Add(uint8(2), []byte{0xf0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
	f.Add(uint8(2), []byte{0xd0, 0x6b, 0x33, 0x43, 0xcf, 0, 0, 0x40, 1, 0})
	f.Add(uint8(1), short)
	f.Fuzz(func(t *testing.T, kind uint8, pkt []byte) {
		p, counted, pending, unknown, _ := guardAddrs(t)
		addr := [...]*net.UDPAddr{counted, pending, unknown}[int(kind)%3]
		in := bytes.Clone(pkt)
		d := p.dropped.Load()
		n, reached := p.admitAt(pkt, addrPort(addr))
		if !bytes.Equal(pkt, in) {
			t.Fatal("the guard wrote into the datagram")
		}
		if n < 0 || n > len(pkt) {
			t.Fatalf("QUIC gets %d bytes of %d", n, len(pkt))
		}
		if len(pkt) > 0 && reached != (addr == counted) {
			t.Fatalf("reached %v from %v", reached, addr)
		}
		if addr == counted && n != len(pkt) {
			t.Fatalf("a counted address's datagram cut from %d to %d bytes", len(pkt), n)
		}
		if dd := p.dropped.Load() - d; dd > 1 {
			t.Fatalf("%d packets of one datagram counted dropped", dd)
		}
		if n < len(pkt) {
			// The prefix QUIC gets is whole long-header packets, each
			// within the datagram, its destination ID within the packet.
			off := 0
			for off < n {
				l, dcid := longPacket(pkt[off:])
				if l <= 0 || off+l > len(pkt) || len(dcid) > 20 || (len(dcid) > 0 && !bytes.Equal(dcid, pkt[off+6:off+6+len(dcid)])) {
					t.Fatalf("packet at %d of the %d bytes passed: length %d, destination ID %x", off, n, l, dcid)
				}
				off += l
			}
			if off != n {
				t.Fatalf("%d bytes passed end inside a packet ending at %d", n, off)
			}
		}
		p.mu.RLock()
		_, kept := p.pending[addrPort(unknown)]
		_, counts := p.n[addrPort(unknown)]
		p.mu.RUnlock()
		if kept || counts {
			t.Fatal("a datagram from an unknown address left it in the table")
		}
	})
}
