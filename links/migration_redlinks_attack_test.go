package links

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
)

// This file attacks the link layer through QUIC's path validation. quic-go
// servers take a client's packets from any source address as a path
// change: they answer a PATH_CHALLENGE from a new address with a
// 1200-byte probe sent there, whatever the packet's size, and move the
// connection to an address once it answered a challenge.

// tapConn is the attacking member's socket: it records the destination
// connection ID of the short-header packets its QUIC stack sends, and
// once deaf is set delivers nothing more to the stack (the node's
// acknowledgements of packets the stack never sent would make it close
// the connection; an attacker's own QUIC code would ignore them).
type tapConn struct {
	net.PacketConn
	mu   sync.Mutex
	dcid []byte
	deaf atomic.Bool
}

func (c *tapConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) > 5 && p[0]&0x80 == 0 {
		c.mu.Lock()
		c.dcid = append(c.dcid[:0], p[1:5]...) // quic-go's connection IDs are 4 bytes
		c.mu.Unlock()
	}
	return c.PacketConn.WriteTo(p, addr)
}

func (c *tapConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(p)
		if err != nil || !c.deaf.Load() {
			return n, a, err
		}
	}
}

func (c *tapConn) connID() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.dcid)
}

// shortSealer seals 1-RTT (short header) packets of a connection whose
// client traffic secret it was given (RFC 9001, section 5).
type shortSealer struct {
	aead cipher.AEAD
	iv   []byte
	hp   func(sample []byte) []byte // the 5 bytes of header protection mask
}

func expandLabel(h func() hash.Hash, secret []byte, label string, n int) []byte {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0)
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

func newShortSealer(suite uint16, secret []byte) (*shortSealer, error) {
	sha := func() hash.Hash { return sha256.New() }
	keyLen := 16
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
	case tls.TLS_AES_256_GCM_SHA384:
		sha, keyLen = func() hash.Hash { return sha512.New384() }, 32
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		keyLen = 32
	default:
		return nil, errors.New("unknown cipher suite")
	}
	key := expandLabel(sha, secret, "quic key", keyLen)
	iv := expandLabel(sha, secret, "quic iv", 12)
	hpKey := expandLabel(sha, secret, "quic hp", keyLen)
	s := &shortSealer{iv: iv}
	if suite == tls.TLS_CHACHA20_POLY1305_SHA256 {
		a, err := chacha20poly1305.New(key)
		if err != nil {
			return nil, err
		}
		s.aead = a
		s.hp = func(sample []byte) []byte {
			c, err := chacha20.NewUnauthenticatedCipher(hpKey, sample[4:16])
			if err != nil {
				panic(err)
			}
			c.SetCounter(binary.LittleEndian.Uint32(sample[:4]))
			mask := make([]byte, 5)
			c.XORKeyStream(mask, mask)
			return mask
		}
		return s, nil
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if s.aead, err = cipher.NewGCM(blk); err != nil {
		return nil, err
	}
	hpBlk, err := aes.NewCipher(hpKey)
	if err != nil {
		return nil, err
	}
	s.hp = func(sample []byte) []byte {
		mask := make([]byte, 16)
		hpBlk.Encrypt(mask, sample)
		return mask[:5]
	}
	return s, nil
}

// seal is a short-header packet to dcid with packet number pn (4 bytes
// on the wire, key phase 0) carrying the frames in payload.
func (s *shortSealer) seal(dcid []byte, pn uint32, payload []byte) []byte {
	hdr := append([]byte{0x40 | 0x03}, dcid...) // fixed bit, 4-byte packet number
	pnOff := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, pn)
	nonce := bytes.Clone(s.iv)
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(uint64(pn) >> (8 * i))
	}
	pkt := s.aead.Seal(bytes.Clone(hdr), nonce, payload, hdr)
	mask := s.hp(pkt[pnOff+4 : pnOff+4+16])
	pkt[0] ^= mask[0] & 0x1f
	for i := range 4 {
		pkt[pnOff+i] ^= mask[1+i]
	}
	return pkt
}

// clientSecret is the CLIENT_TRAFFIC_SECRET_0 in a TLS key log.
func clientSecret(keyLog string) ([]byte, bool) {
	sc := bufio.NewScanner(strings.NewReader(keyLog))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
			b, err := hex.DecodeString(f[2])
			return b, err == nil
		}
	}
	return nil, false
}

// tappedSealer waits for a packet of the connection tap taps to a
// connection ID of the node, and returns a sealer with the client keys of
// suite in the key log keys, and that ID; tap then stops listening.
func tappedSealer(t *testing.T, tap *tapConn, keys *logBuf, suite uint16) (*shortSealer, []byte) {
	t.Helper()
	var dcid []byte
	waitFor(t, "a packet of the tapped connection to a connection ID of the node", patience, func() bool {
		dcid = tap.connID()
		return dcid != nil
	})
	secret, ok := clientSecret(keys.String())
	if !ok {
		t.Fatal("no client traffic secret in the key log")
	}
	s, err := newShortSealer(suite, secret)
	if err != nil {
		t.Fatalf("cipher suite %#x: %v", suite, err)
	}
	tap.deaf.Store(true)
	return s, dcid
}

// memberWithKeys links a member ("m", a valid certificate of the mesh of
// victimNode) to victimNode and returns what it needs to write packets of
// that link itself: a sealer with the link's client keys, a connection
// ID of the node, and its tapped socket.
func memberWithKeys(t *testing.T, target *node, m *node, tap *tapConn, keys *logBuf) (*shortSealer, []byte) {
	t.Helper()
	l := dial(t, m, target)
	target.rec.waitEvent(t, "up", patience)
	s, dcid := tappedSealer(t, tap, keys, l.(*quicLink).conn.ConnectionState().TLS.CipherSuite)
	return s, dcid
}

// reflector is a member linked to target that can write packets of its
// link itself, and a victim: a socket of its own, which the member's
// packets claim as their source (on a real network, a spoofed source
// address), counting the short-header bytes the node sends it.
type reflector struct {
	target *node
	sealer *shortSealer
	dcid   []byte
	victim net.PacketConn
	got    atomic.Int64 // short-header bytes the victim received
	done   chan struct{}
}

func newReflector(t *testing.T) *reflector {
	t.Helper()
	ca := testCA(t, "m")
	r := &reflector{target: newNode(t, issue(t, ca, "n"), tolerant), done: make(chan struct{})}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tap := &tapConn{PacketConn: udp}
	t.Cleanup(func() { _ = udp.Close() })
	m := newNode(t, issue(t, ca, "m"), func(c *QUICConfig) { c.PacketConn = tap; tolerant(c) })
	keys := &logBuf{}
	m.tlsConf.KeyLogWriter = keys
	r.sealer, r.dcid = memberWithKeys(t, r.target, m, tap, keys)
	if r.victim, err = net.ListenPacket("udp", "127.0.0.9:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.victim.Close() })
	go func() {
		defer close(r.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := r.victim.ReadFrom(buf)
			if err != nil {
				return
			}
			if n > 0 && buf[0]&0x80 == 0 {
				r.got.Add(int64(n))
			}
		}
	}()
	return r
}

// probe has the member send packets PATH_CHALLENGEs of its link as the
// victim, waits until the victim heard nothing for a second, and fails t
// if the node sent the victim more than three times the bytes.
func (r *reflector) probe(t *testing.T, packets int) {
	t.Helper()
	drops := r.target.PathDrops()
	sent := 0
	for i := range packets {
		challenge := make([]byte, 9)
		challenge[0] = 0x1a // PATH_CHALLENGE
		binary.BigEndian.PutUint64(challenge[1:], uint64(i)+1)
		pkt := r.sealer.seal(r.dcid, 1<<20+uint32(i), challenge)
		if _, err := r.victim.WriteTo(pkt, r.target.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		sent += len(pkt)
		time.Sleep(time.Millisecond)
	}
	last, quiet := int64(-1), time.Now()
	for time.Since(quiet) < time.Second {
		if n := r.got.Load(); n != last {
			last, quiet = n, time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = r.victim.SetReadDeadline(time.Now())
	<-r.done
	got := r.got.Load()
	t.Logf("member sent %d packets, %d bytes, as the victim; the node sent the victim %d bytes of short-header packets", packets, sent, got)
	if got > 3*int64(sent) {
		t.Fatalf("the node sent an address with no connection %d bytes for %d it received from there (%.0f×): a member reflects and amplifies its traffic at any address",
			got, sent, float64(got)/float64(sent))
	}
	if d := r.target.PathDrops() - drops; d < uint64(packets-pendingShort) {
		t.Fatalf("the node counted %d packets dropped from an address with no connection, want at least %d of the member's %d", d, packets-pendingShort, packets)
	}
}

// TestAttackMemberReflectsPathProbesAtThirdParty: a member of the mesh,
// linked to a node, sends the node small packets of its own link (a
// PATH_CHALLENGE, 34 bytes) with the source address of a third party,
// the victim (an honest node, or anyone). quic-go took each as the probe
// of a new path and answered it at the victim with a 1200-byte packet: the
// node amplified the member's traffic 35 times at an address that never
// asked for anything, beyond QUIC's own bound of three times what an
// address sent (RFC 9000, section 8). The node must send an address
// that has no connection with it at most three times what it received
// from there.
func TestAttackMemberReflectsPathProbesAtThirdParty(t *testing.T) {
	newReflector(t).probe(t, 200)
}

// TestAttackMemberReflectsBehindSpoofedFirstPacket: as above, but the
// member first sends the node a QUIC first packet (a client Initial) with
// the victim's source address, which a quiet node admits without a Retry.
// Counting the victim's address from that packet on let the member's
// probes through for the handshake's life (5 s); until the address
// answered, at most pendingShort of them pass.
func TestAttackMemberReflectsBehindSpoofedFirstPacket(t *testing.T) {
	r := newReflector(t)
	r.spoofFirstPacket(t)
	r.probe(t, 200)
}

// clientInitial is a real QUIC client Initial toward target, captured
// before it left.
func clientInitial(t *testing.T, target net.Addr) []byte {
	t.Helper()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	capture := &firstPacket{PacketConn: udp, got: make(chan []byte, 1)}
	tr := &quic.Transport{Conn: capture}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = tr.Dial(ctx, target, &tls.Config{NextProtos: []string{ALPN}, ServerName: "circuitmesh"}, nil)
	}()
	initial := <-capture.got
	cancel()
	_ = tr.Close()
	return initial
}

// spoofFirstPacket has the node admit a client Initial with the victim's
// source address.
func (r *reflector) spoofFirstPacket(t *testing.T) {
	t.Helper()
	initial := clientInitial(t, r.target.LocalAddr())
	if _, err := r.victim.WriteTo(initial, r.target.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the node to admit the spoofed first packet", patience, func() bool { return r.target.handshakesFrom(r.victim.LocalAddr()) > 0 })
}

// TestAttackMemberReflectsWhileNodeDialsVictim: as above, while the node
// dials the victim's address (one a member's gossip may claim as its
// own; it never answers). Counting the address from the dial's first
// packet let the member's probes through for the dial's life; until the
// address answered, at most pendingShort of them pass.
func TestAttackMemberReflectsWhileNodeDialsVictim(t *testing.T) {
	r := newReflector(t)
	ctx, cancel := context.WithCancel(context.Background())
	dialed := make(chan struct{})
	go func() {
		defer close(dialed)
		_, _ = r.target.Dial(ctx, r.victim.LocalAddr().String())
	}()
	defer func() { cancel(); <-dialed }()
	time.Sleep(50 * time.Millisecond) // the dial's first packet is out
	r.probe(t, 200)
}

// firstPacket is a socket that keeps the first packet written to it and
// sends nothing.
type firstPacket struct {
	net.PacketConn
	got  chan []byte
	once sync.Once
}

func (c *firstPacket) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.once.Do(func() { c.got <- bytes.Clone(p) })
	return len(p), nil
}

// memberLinked is a node and the link of a member, m, to it, with the
// address the member linked from.
func memberLinked(t *testing.T) (target *node, l Link, from string) {
	t.Helper()
	ca := testCA(t, "m")
	target = newNode(t, issue(t, ca, "n"), tolerant)
	m := newNode(t, issue(t, ca, "m"), tolerant)
	l = dial(t, m, target)
	target.rec.waitEvent(t, "up", patience)
	return target, l, m.LocalAddr().String()
}

// TestAttackMemberMovesItsLinkToAnotherAddress: a member linked to a node
// probes a path from another socket of its own and switches its link to
// it (QUIC connection migration, quic-go's Conn.AddPath). The node moved
// the link: its remote address, in `peers`, in discovery's proven
// addresses and in the duplicate-dial check, became one the member never
// handshook from, outside the gate's accounting of the address it did. A
// link stays at the address it was established from: the probe gets no
// answer and the node's link keeps its address.
func TestAttackMemberMovesItsLinkToAnotherAddress(t *testing.T) {
	target, l, from := memberLinked(t)
	if got := target.Link("m").RemoteAddr().String(); got != from {
		t.Fatalf("the node has the member's link at %s, want %s", got, from)
	}

	if got := memberMovesLink(t, l, target, from, func(c *net.UDPConn) net.PacketConn { return c }); got == nil || got.RemoteAddr().String() != from {
		t.Fatalf("the node moved the member's link from %s to %v, an address it never handshook from", from, got.RemoteAddr())
	}
}

// memberMovesLink has the member's link l move to another address of the
// member's (quic-go's AddPath, Probe and Switch, over a new socket that
// conn wraps), sends a routing message on the new path, and returns the
// node target's link to the member once it moved from the address from,
// or after 3 s.
func memberMovesLink(t *testing.T, l Link, target *node, from string, conn func(*net.UDPConn) net.PacketConn) Link {
	t.Helper()
	other, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: conn(other.(*net.UDPConn))}
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
		// Packets on the new path make the node move the link.
		_ = l.SendRouting([]byte("moved"))
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && target.Link("m").RemoteAddr().String() == from {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return target.Link("m")
}

// TestPathTableHoldsLiveConnectionsOnly: the addresses from which QUIC
// reads short-header packets are those of live connections, in both
// directions; closing the links empties the table (regression test: the
// table is bounded by the connections).
func TestPathTableHoldsLiveConnectionsOnly(t *testing.T) {
	a, b, la := pair(t)
	known := func(n *node, addr net.Addr) bool {
		n.paths.mu.RLock()
		defer n.paths.mu.RUnlock()
		return n.paths.n[addrPort(addr)] > 0
	}
	if !known(a, b.LocalAddr()) || !known(b, a.LocalAddr()) {
		t.Fatal("a live link's address is not in its nodes' path tables")
	}
	_ = la.Close("done")
	size := func(n *node) int {
		n.paths.mu.RLock()
		defer n.paths.mu.RUnlock()
		return len(n.paths.n) + len(n.paths.pending)
	}
	waitFor(t, "the path tables to empty", patience, func() bool { return size(a) == 0 && size(b) == 0 })
}
