package node

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// TestGossipHeldBytesShared: the bytes memberlist holds for inbound
// streams are charged whatever their source prefix while the node's
// bound has room (members on one host share a prefix); beyond it, a
// prefix within its share takes the bytes of streams of a prefix holding
// more than its share, the most first, and nothing else gives way.
// Closing a stream gives its bytes back.
func TestGossipHeldBytesShared(t *testing.T) {
	s := streamSlots{byPrefix: make(map[netip.Prefix]int)}
	now := time.Now()
	open := func(a string) *guardConn {
		t.Helper()
		c := &guardConn{inbound: true, prefix: netip.MustParsePrefix(a + "/32")}
		if _, _, reason := s.admit(c, now); reason != "" {
			t.Fatalf("a stream of %s refused a slot: %s", a, reason)
		}
		return c
	}
	charge := func(c *guardConn, n int64, wantEvicted []*guardConn, wantReason string) {
		t.Helper()
		ev, reason := s.heldBytes(c, n)
		if reason != wantReason || !slices.Equal(ev, wantEvicted) {
			t.Fatalf("charging %d bytes to a stream of %v: evicted %d streams, refused %q; want %d, %q", n, c.prefix, len(ev), reason, len(wantEvicted), wantReason)
		}
	}
	held := func(want int64) {
		t.Helper()
		if all, _ := s.heldNow(netip.Prefix{}); all != want {
			t.Fatalf("held %d bytes, want %d", all, want)
		}
	}
	const mib = 1 << 20

	// One prefix takes the whole bound while it is free.
	host := []*guardConn{open("127.0.0.1"), open("127.0.0.1"), open("127.0.0.1"), open("127.0.0.1")}
	for _, c := range host {
		charge(c, gossipHeld/4, nil, "")
	}
	held(gossipHeld)
	charge(host[0], 1, nil, refuseHeldShare)
	// A stream of another prefix takes the bytes of the oldest of them.
	other := open("192.0.2.1")
	charge(other, mib, []*guardConn{host[0]}, "")
	held(gossipHeld - gossipHeld/4 + mib)
	// The evicted stream's further charges are refused, and its Close
	// frees nothing more.
	charge(host[0], 1, nil, refuseHeldEvicted)
	s.release(host[0])
	held(gossipHeld - gossipHeld/4 + mib)
	// Beyond its share, the other prefix is refused; within it, it takes
	// bytes while the host's prefix holds more than its share.
	charge(other, gossipHeldShare, nil, refuseHeldShare)
	charge(other, gossipHeldShare-mib, nil, "")
	held(gossipHeld)
	charge(other, 1, nil, refuseHeldShare)
	third := open("192.0.2.2")
	charge(third, gossipHeldShare, []*guardConn{host[1]}, "")
	charge(open("192.0.2.3"), gossipHeldShare, []*guardConn{host[2]}, "")
	// Every prefix holds its share at most now: nothing gives way.
	charge(open("192.0.2.4"), 1, nil, refuseHeld)
	// A stream's Close gives its bytes back.
	s.release(third)
	held(gossipHeld - gossipHeldShare)
	for _, c := range slices.Clone(s.held) {
		s.release(c)
	}
	held(0)
	if len(s.bytesBy) != 0 {
		t.Errorf("bytes held by %d prefixes with no stream open", len(s.bytesBy))
	}
}

// TestGossipHonestPushPullAtScale: the bounds on inbound push-pulls
// leave a large mesh's gossip alone. A node that knows only itself takes
// a push-pull of 1,000 members with metadata of an honest size (about
// 480 bytes), plaintext and encrypted, as a node that restarted with
// nothing to join gets from the members that push it their state; then,
// knowing them, one of 2,000.
func TestGossipHonestPushPullAtScale(t *testing.T) {
	withEachGossipKey(t, func(t *testing.T, d *Node, key []byte) {
		pushMembers(t, d, key, 1000)
		pushMembers(t, d, key, 2000)
	})
}

// withEachGossipKey runs f in a subtest on a node d whose gossip is
// plaintext (key nil), then in another on one whose gossip is encrypted
// under key.
func withEachGossipKey(t *testing.T, f func(t *testing.T, d *Node, key []byte)) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			var key []byte
			if encrypted {
				key = bytes.Repeat([]byte{7}, 32)
			}
			c := newCluster(t, true)
			c.tweak = func(cfg *Config) { cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key} }
			f(t, c.add("d"), key)
		})
	}
}

// pushMembers pushes d the states of n members (the same names each
// time) as a member does, encrypted under key if it is set, and waits
// until d lists them all.
func pushMembers(t *testing.T, d *Node, key []byte, n int) {
	t.Helper()
	pad := `"` + strings.Repeat("c", 400) + `"`
	var body bytes.Buffer
	body.Write(pushPullHeader(t, n, 0))
	enc := codec.NewEncoder(&body, &codec.MsgpackHandle{})
	for i := range n {
		meta, _ := json.Marshal(memberMeta{Link: fmt.Sprintf("127.0.0.1:%d", 20000+i), Mesh: "test", Coord: json.RawMessage(pad)})
		if err := enc.Encode(gossipPushState{Name: fmt.Sprintf("member-%04d", i), Addr: net.IPv4(127, 0, 0, 1).To4(), Port: uint16(20000 + i),
			Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}); err != nil {
			t.Fatal(err)
		}
	}
	msg := body.Bytes()
	if key != nil {
		msg = sealStream(t, key, msg)
	}
	refused := gossipRefused(d)
	conn, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, conn) // d's answer, its own state
	deadline := time.Now().Add(10 * time.Second)
	for d.disco.ml.NumMembers() < n+1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("a push-pull of %d members (%d bytes): d lists %d members, refused %d streams", n, len(msg), d.disco.ml.NumMembers(), gossipRefused(d)-refused)
	if got := gossipRefused(d) - refused; got != 0 {
		t.Errorf("d refused %d streams of an honest push-pull of %d members", got, n)
	}
	if got := d.disco.ml.NumMembers(); got < n+1 {
		t.Errorf("d lists %d members after a push-pull of %d, want %d", got, n, n+1)
	}
}

// sealStream is msg as memberlist encrypts a stream (net.go
// encryptLocalState, encryption version 1, no label): the type, the
// length, then the version, the nonce and msg sealed with AES-GCM over
// the type and length.
func sealStream(t *testing.T, key, msg []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 5, 5+1+gcm.NonceSize()+len(msg)+gcm.Overhead())
	out[0] = gmEncrypt
	binary.BigEndian.PutUint32(out[1:], uint32(1+gcm.NonceSize()+len(msg)+gcm.Overhead()))
	out = append(out, 1)
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	out = append(out, nonce...)
	return gcm.Seal(out, nonce, msg, out[:5])
}
