package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
)

// TestAttackGossipKeylessEncryptedStreamsHeld: a stranger without the
// gossip key opens gossip streams to a node whose gossip is encrypted and
// on each writes memberlist's encrypted-message type, a length, and that
// much junk less one byte, then waits. memberlist reads the whole announced length into a growing
// buffer before it tries to decrypt, holding it until its TCP timeout
// (10 s); anyone can send the type byte. Nobody without the key may make
// d hold more than a small bound: the guard refuses an encrypted stream
// announcing more than the members d knows could send, and charges the
// rest to the bytes held for inbound streams.
func TestAttackGossipKeylessEncryptedStreamsHeld(t *testing.T) {
	// 20 MiB, the most memberlist takes; and 1,578,496 bytes, the most d
	// takes while it knows only itself ((1 + 1,024 states) × 1,536 bytes
	// + 4 KiB), which 16 streams take beyond the bytes d holds for
	// inbound streams.
	for _, announced := range []int{20 << 20, 1578496} {
		t.Run(fmt.Sprintf("announced=%d", announced), func(t *testing.T) {
			keylessStreamsHeld(t, announced)
		})
	}
}

func keylessStreamsHeld(t *testing.T, announced int) {
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key} }
	d := c.add("d")

	const streams = gossipStreams
	junk := make([]byte, announced-1) // the last byte never comes
	var head [5]byte
	head[0] = gmEncrypt
	binary.BigEndian.PutUint32(head[1:], uint32(announced))

	grew := heldByStreams(t, d, streams, func(conn net.Conn) {
		_, _ = conn.Write(head[:])
		_, _ = conn.Write(junk)
	})
	t.Logf("%d keyless encrypted streams announcing %d KiB each, sent whole less a byte: d's live heap grew by up to %d MiB while they wait; %d streams refused",
		streams, announced>>10, grew>>20, gossipRefused(d))
	if grew > 32<<20 {
		t.Errorf("a stranger without the gossip key made d hold %d MiB with %d gossip streams (want at most 32 MiB)", grew>>20, streams)
	}
}
