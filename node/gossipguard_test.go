package node

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// withCrc is memberlist's hasCrcMsg wrapping of msg.
func withCrc(msg []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{gmHasCrc}, crc32.ChecksumIEEE(msg))
	return append(b, msg...)
}

// compressStr is a compressMsg whose Buf is a msgpack str, as encoders
// that predate the bin types write a byte slice.
func compressStr(t *testing.T, payload []byte) []byte {
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
