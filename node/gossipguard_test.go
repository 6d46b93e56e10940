package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// withCrc is memberlist's hasCrcMsg wrapping of msg.
func withCrc(msg []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{gmHasCrc}, crc32.ChecksumIEEE(msg))
	return append(b, msg...)
}

// compressStr is a compressMsg whose Buf is a msgpack str, as encoders
// that predate the bin types write a byte slice.
func compressStr(t testing.TB, payload []byte) []byte {
	z := lzwOf(t, payload)
	b := []byte{gmCompress, 0x82, 0xa4, 'A', 'l', 'g', 'o', 0x00, 0xa3, 'B', 'u', 'f', 0xda}
	b = binary.BigEndian.AppendUint16(b, uint16(len(z)))
	return append(b, z...)
}

func TestGossipGuardPackets(t *testing.T) {
	g := &gossipGuard{}
	ping := []byte{0, 0x80}
	suspect := []byte{3, 0x80}
	// memberlist sends one probe a datagram, broadcasts piggybacked.
	honest := compound([][]byte{ping, suspect, suspect})
	parts := make([][]byte, gossipPacketParts+1)
	for i := range parts {
		parts[i] = ping
	}
	for _, tc := range []struct {
		name   string
		packet []byte
		want   []byte // the packet memberlist gets
		reason string
	}{
		{"plain", ping, ping, ""},
		{"compound", honest, honest, ""},
		{"checksummed compressed compound", withCrc(compressMsg(t, honest)), honest, ""},
		{"compressed, Buf a str", compressStr(t, honest), honest, ""},
		{"bad checksum", append(withCrc(honest)[:len(withCrc(honest))-1], 9), nil, refuseMalformed},
		{"too big", make([]byte, gossipPacketMax+1), nil, refuseSize},
		{"expands too far", compressMsg(t, make([]byte, 1<<20)), nil, refuseBomb},
		{"nested compound", compound([][]byte{honest}), nil, refuseCompound},
		{"compressed twice", compressMsg(t, compressMsg(t, ping)), nil, refuseCompound},
		{"too many parts", compound(parts), nil, refuseCompound},
		{"two pings", compound([][]byte{ping, suspect, ping}), nil, refuseCompound},
		{"a ping and an indirect ping", compound([][]byte{{1, 0x80}, ping}), nil, refuseCompound},
		{"truncated compound", honest[:len(honest)-1], nil, refuseMalformed},
		{"unknown algorithm", append([]byte{gmCompress, 0x82, 0xa4, 'A', 'l', 'g', 'o', 0x01}, compressMsg(t, ping)[8:]...), nil, refuseMalformed},
	} {
		got, reason, err := g.checkPacket(tc.packet)
		if reason != tc.reason || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %x, refused %q (%v); want %x, refused %q", tc.name, got, reason, err, tc.want, tc.reason)
		}
	}
}

// BenchmarkGossipGuardPacket is the guard's work on an honest datagram
// as memberlist sends it: checksummed, compressed, a compound of
// piggybacked messages filling its 1,400 bytes.
func BenchmarkGossipGuardPacket(b *testing.B) {
	g := &gossipGuard{}
	part := bytes.Repeat([]byte{4, 0x80}, 35)
	var parts [][]byte
	for len(compound(append(parts, part))) <= 1400 {
		parts = append(parts, part)
	}
	packet := withCrc(compressMsg(b, compound(parts)))
	b.SetBytes(int64(len(packet)))
	b.ReportAllocs()
	for b.Loop() {
		if _, reason, err := g.checkPacket(packet); reason != "" {
			b.Fatal(reason, err)
		}
	}
}

// TestPingRequestTargets: a plaintext ping request whose target is not a
// member's gossip address is dropped, alone or from a compound (the rest
// of which is handed on); one for a member is handed on.
func TestPingRequestTargets(t *testing.T) {
	from := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7946}
	member := netip.MustParseAddrPort("192.0.2.2:7946")
	isMember := func(a netip.AddrPort) bool { return a == member }
	request := func(target netip.AddrPort) []byte {
		return gossipPacket(t, gmIndirectPing, gossipIndirectPing{SeqNo: 1, Target: target.Addr().AsSlice(), Port: target.Port(),
			Node: "n", SourceAddr: from.IP.To4(), SourcePort: uint16(from.Port), SourceNode: "s"}, nil)
	}
	suspect := []byte{3, 0x80}
	stray := request(netip.MustParseAddrPort("198.51.100.7:53"))
	if out, n := ackToSender(stray, from, isMember); out != nil || n != 1 {
		t.Fatalf("a request for a stranger's address: %d bytes handed on, %d dropped", len(out), n)
	}
	out, n := ackToSender(compound([][]byte{stray, suspect}), from, isMember)
	if n != 1 || out == nil || !bytes.Equal(out, compound([][]byte{suspect})) {
		t.Fatalf("a compound with a request for a stranger's address: %x handed on, %d dropped", out, n)
	}
	ok := request(member)
	if out, n := ackToSender(ok, from, isMember); n != 0 || !bytes.Equal(out, ok) {
		t.Fatalf("a request for a member: %x handed on, %d dropped", out, n)
	}
}

// TestMemberAddrsVerifiedOnly: an address counts as a member's only once
// a member at it has verified signed metadata naming that address, also
// when it verified after it joined, and no longer once that member left;
// without a CA (Insecure: verified nil) every member counts.
func TestMemberAddrsVerifiedOnly(t *testing.T) {
	verified := map[string]netip.AddrPort{}
	m := memberAddrs{byName: make(map[string]memberAddr), at: make(map[netip.AddrPort]*addrNames),
		verified: func(name string, at netip.AddrPort) bool { return verified[name] == at }}
	a := netip.MustParseAddrPort("127.0.0.1:7946")
	node := func(name string) *memberlist.Node {
		return &memberlist.Node{Name: name, Addr: a.Addr().AsSlice(), Port: a.Port()}
	}
	m.set(node("ghost"))
	if m.has(a) {
		t.Fatal("the address of a member with unsigned metadata counts as a member's")
	}
	m.set(node("m"))
	if m.has(a) {
		t.Fatal("the address of a member not verified counts as a member's")
	}
	verified["m"] = netip.MustParseAddrPort("127.0.0.1:7947")
	if m.has(a) {
		t.Fatal("the address of a member whose verified metadata names another counts as a member's")
	}
	verified["m"] = a
	if !m.has(a) {
		t.Fatal("the address of a member verified after it joined does not count")
	}
	m.drop(node("m"))
	if m.has(a) {
		t.Fatal("the address of a member that left still counts")
	}
	insecure := memberAddrs{byName: make(map[string]memberAddr), at: make(map[netip.AddrPort]*addrNames)}
	insecure.set(node("ghost"))
	if !insecure.has(a) {
		t.Fatal("without a CA, a member's address does not count")
	}
}

// TestGossipStreamCutInCompressHeader: a stream whose compressed message
// ends or reaches its read deadline inside the compress header, as an
// answer to a TCP ping can under load, is not refused as malformed: the
// reader memberlist gets fails with the read's own error, as when the
// stream ends before its first byte. Before, both counted as malformed
// gossip ("not a map of 2"), and memberlist met ErrGossipRefused.
func TestGossipStreamCutInCompressHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(local, remote net.Conn)
		want error
	}{
		{"end", func(_, remote net.Conn) { remote.Close() }, io.EOF},
		{"deadline", func(local, _ net.Conn) { _ = local.SetReadDeadline(time.Now()) }, os.ErrDeadlineExceeded},
	} {
		local, remote := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			// A pipe's Write returns once the guard read the byte.
			if _, err := remote.Write([]byte{gmCompress}); err == nil {
				tc.cut(local, remote)
			}
		}()
		c := (&gossipGuard{}).guard(local, false)
		r, reason, err := c.inspect()
		<-done
		local.Close()
		remote.Close()
		if reason != "" {
			t.Errorf("%s inside the compress header: refused %q (%v)", tc.name, reason, err)
			continue
		}
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, tc.want) {
			t.Errorf("%s inside the compress header: memberlist reads %v, want %v", tc.name, err, tc.want)
		}
	}
}
