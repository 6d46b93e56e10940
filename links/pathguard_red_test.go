package links

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"net"
	"strconv"
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
	target, l, from := memberLinked(t)

	coalescing := func(c *net.UDPConn) net.PacketConn { return &coalescingConn{UDPConn: c} }
	if got := memberMovesLink(t, l, target, from, coalescing); got == nil || got.RemoteAddr().String() != from {
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
	r.spoofFirstPacket(t)

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

// handshakeTap is a tapConn that also notes the destination connection ID
// of the handshake packets written after the first (the node's, as in
// 1-RTT packets): the node may refuse the connection before its client
// wrote a 1-RTT packet.
type handshakeTap struct{ tapConn }

func (c *handshakeTap) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) > 10 && p[0]&0x80 != 0 && p[5] == 4 { // to a 4-byte ID: the node's, not the first Initial's
		c.mu.Lock()
		c.dcid = append(c.dcid[:0], p[6:10]...)
		c.mu.Unlock()
	}
	return c.tapConn.WriteTo(p, addr)
}

// TestAttackStrangerReflectsAtNeighbour: a stranger with a certificate of
// its own CA does what docs/SECURITY.md leaves to a holder of a valid
// certificate (packets of its connection written with the address of
// another live connection of the node get their PATH_CHALLENGEs answered
// there, 1200 bytes each) at an honest neighbour of the node. The
// neighbour must receive at most three times what the stranger sent as
// it. Before, TLS took any certificate and the link handshake refused the
// stranger's only after it, so the stranger held the connection's keys
// meanwhile: a few milliseconds on a loaded machine answered tens of its
// challenges (4x), and, before the link handshake refused a stranger
// before its hello, the handshake timeout (36x). Now the node refuses it
// in TLS and never reads its 1-RTT packets: they meet quic-go's closed
// connection, which answers the 1st, 2nd, 4th, 8th, ... with its closing
// packet at the address they came from.
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
	tap := &handshakeTap{tapConn: tapConn{PacketConn: ssock}}
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
	var suite atomic.Uint32
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		suite.Store(uint32(cs.CipherSuite))
		return nil
	}
	conn, err := str.Dial(ctx, target.LocalAddr(), conf, &quic.Config{})
	switch {
	case err == nil:
		defer conn.CloseWithError(0, "")
	case !peerRefusedCertificate(err): // the node's refusal may end it before Dial returns
		t.Fatalf("the stranger's QUIC handshake: %v", err)
	}
	s, dcid := tappedSealer(t, &tap.tapConn, keys, uint16(suite.Load()))

	const packets = 200
	sent, got := reflectAt(t, target, s, dcid, hsock, &hconn.got, packets, nil, 500*time.Millisecond)
	t.Logf("a stranger sent %d packets, %d bytes, as the node's neighbour; the neighbour read %d bytes of short-header packets meanwhile (its own link's included)", packets, sent, got)
	if got > 3*sent {
		t.Fatalf("the node sent its neighbour %d bytes for %d a stranger without a certificate of the mesh sent as it (%.0f×): TLS takes any certificate, so a stranger holds a connection's keys for the link handshake's time",
			got, sent, float64(got)/float64(sent))
	}
}

// pathTableSize is the number of addresses n's guard holds, counted and
// pending.
func pathTableSize(n *node) int {
	n.paths.mu.RLock()
	defer n.paths.mu.RUnlock()
	return len(n.paths.n) + len(n.paths.pending)
}

// TestPathTableEmptiesAfterFailedHandshakes: every way a connection can
// end before it became a link leaves nothing in the guard's tables: a
// stranger, refused in TLS, an impostor (a member's certificate without
// its key) whose address TLS counted once the certificate verified and
// whose handshake then fails at its signature, a spoofed first packet
// whose handshake times out, a dial to a silent address cancelled, and
// links opened and closed in a row (regression test: the tables are
// bounded by the live connections only while each ending path uncounts
// its registration).
func TestPathTableEmptiesAfterFailedHandshakes(t *testing.T) {
	ca := testCA(t, "m")
	fast := func(c *QUICConfig) { c.HandshakeTimeout = time.Second }
	target := newNode(t, issue(t, ca, "n"), fast)

	// A stranger, refused in TLS. It and the impostor fail from their own
	// prefix, which the gate then holds to a lower rate, so that the
	// links below are not refused for the handshakes they did not fail.
	const failing = "127.0.0.3"
	stranger := newNode(t, issue(t, testCA(t, "m"), "s"), func(c *QUICConfig) { fast(c); c.ListenAddr = failing + ":0" })
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		if _, err := stranger.Dial(ctx, target.LocalAddr().String()); err == nil {
			cancel()
			t.Fatal("a certificate of another CA was taken")
		}
		cancel()
	}

	// An impostor.
	_, wrongKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	impostor := tls.Certificate{Certificate: [][]byte{issue(t, ca, "i").Cert.Raw}, PrivateKey: wrongKey}
	itr, done := transportAt(t, failing)
	defer done()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		conn, err := itr.Dial(ctx, target.LocalAddr(), &tls.Config{
			MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &impostor, nil },
		}, &quic.Config{HandshakeIdleTimeout: patience})
		if err == nil {
			<-conn.Context().Done() // the node's refusal of its signature
		}
		cancel()
	}

	// A spoofed first packet, its handshake left to time out.
	initial := clientInitial(t, target.LocalAddr())
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if _, err := silent.WriteTo(initial, target.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spoofed first packet's address pending", patience, func() bool {
		pending, _, _ := pendingState(target, silent.LocalAddr(), nil)
		return pending
	})

	// A dial to the silent address, cancelled.
	dctx, dcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, _ = target.Dial(dctx, silent.LocalAddr().String())
	dcancel()

	// Links opened and closed.
	for i := range 10 {
		m := newNode(t, issue(t, ca, "m"+string(rune('a'+i))), fast)
		l := dial(t, m, target)
		_ = l.Close("done")
		_ = m.Close()
	}
	waitFor(t, "the target's path table to empty", patience, func() bool { return pathTableSize(target) == 0 })
}

// TestPathGuardDualStack: a node listening on a dual-stack socket reads
// an IPv4 peer's packets from an IPv4-mapped address, and one dialling
// from a dual-stack socket to an IPv4 address sends from one; the guard
// compares both unmapped. A link each way carries messages with nothing
// dropped (regression test: an address compared mapped on one side and
// plain on the other drops every short-header packet of the link).
func TestPathGuardDualStack(t *testing.T) {
	probe, err := net.ListenPacket("udp", "[::]:0")
	if err != nil {
		t.Skipf("no dual-stack socket: %v", err)
	}
	_ = probe.Close()
	ca := testCA(t, "m")
	listen := func(addr string) func(*QUICConfig) {
		return func(c *QUICConfig) { c.ListenAddr = addr; tolerant(c) }
	}
	six := newNode(t, issue(t, ca, "six"), listen("[::]:0"))
	four := newNode(t, issue(t, ca, "four"), listen("127.0.0.1:0"))
	port := func(n *node) int { return n.LocalAddr().(*net.UDPAddr).Port }

	check := func(from, to *node, addr string) {
		t.Helper()
		df0, dt0 := from.PathDrops(), to.PathDrops()
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		l, err := from.Dial(ctx, addr)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		to.rec.waitEvent(t, "up", patience)
		for range 20 {
			if err := l.SendRouting([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			to.rec.waitEvent(t, "routing", patience)
		}
		if df, dt := from.PathDrops()-df0, to.PathDrops()-dt0; df+dt != 0 {
			t.Fatalf("the guards dropped short-header packets of a link dialled to %s: %d at the dialler, %d at the acceptor", addr, df, dt)
		}
		_ = l.Close("done")
		waitFor(t, "the path tables to empty", patience, func() bool { return pathTableSize(from) == 0 && pathTableSize(to) == 0 })
	}
	check(four, six, net.JoinHostPort("127.0.0.1", strconv.Itoa(port(six))))
	check(six, four, net.JoinHostPort("127.0.0.1", strconv.Itoa(port(four))))
	other := newNode(t, issue(t, ca, "other"), listen("[::]:0"))
	check(six, other, net.JoinHostPort("::1", strconv.Itoa(port(other))))
	check(other, six, net.JoinHostPort("::ffff:127.0.0.1", strconv.Itoa(port(six))))
}

// natProxy forwards UDP between one client and a server as a NAT does:
// the server sees the client at the proxy's current outside port, and
// rebind moves it to a new one (the old mapping dropped).
type natProxy struct {
	inside *net.UDPConn // the client sends here
	server net.Addr
	client atomic.Pointer[net.UDPAddr]
	cur    atomic.Pointer[net.UDPConn]
}

func newNATProxy(t *testing.T, server net.Addr) *natProxy {
	t.Helper()
	in, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &natProxy{inside: in, server: server}
	p.rebind(t)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := in.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p.client.Store(from)
			_, _ = p.cur.Load().WriteTo(buf[:n], server)
		}
	}()
	t.Cleanup(func() {
		_ = in.Close()
		_ = p.cur.Load().Close()
	})
	return p
}

// rebind gives the client a new outside port.
func (p *natProxy) rebind(t *testing.T) {
	t.Helper()
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if old := p.cur.Swap(out); old != nil {
		_ = old.Close()
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if c := p.client.Load(); c != nil && p.cur.Load() == out {
				_, _ = p.inside.WriteTo(buf[:n], c)
			}
		}
	}()
}

// TestNATRebindingRedialled: a node keeping a static link (Keep) through
// a NAT that rebinds its mapping loses the link, as documented (its
// packets from the new port are dropped), and gets it back by its
// redial from the new port: both ends have a link again, at the new
// address, carrying messages each way.
func TestNATRebindingRedialled(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), nil)
	b := newNode(t, issue(t, ca, "b"), nil)
	nat := newNATProxy(t, b.LocalAddr())
	stop := a.Keep(nat.inside.LocalAddr().String())
	defer stop()
	waitFor(t, "the link up at both ends", patience, func() bool { return a.Link("b") != nil && b.Link("a") != nil })
	first := b.Link("a").RemoteAddr().String()

	drops := b.PathDrops()
	nat.rebind(t)
	outside := nat.cur.Load().LocalAddr().String()
	began := time.Now()
	waitFor(t, "b's link to a at the NAT's new port", patience, func() bool {
		l := b.Link("a")
		return l != nil && l.RemoteAddr().String() == outside && a.Link("b") != nil
	})
	t.Logf("link at %s, after the NAT rebound at %s, back in %v; b dropped %d packets meanwhile", first, outside, time.Since(began), b.PathDrops()-drops)
	for _, dir := range []struct{ from, to *node }{{a, b}, {b, a}} {
		peer := "b"
		if dir.from == b {
			peer = "a"
		}
		waitFor(t, "a message across the new link", patience, func() bool {
			l := dir.from.Link(peer)
			if l == nil {
				return false
			}
			_ = l.SendRouting([]byte("again"))
			select {
			case e := <-dir.to.rec.ev:
				return e == "routing"
			case <-time.After(100 * time.Millisecond):
				return false
			}
		})
	}
}

// TestPathGuardAdmitAllocatesNothing: the guard's look-up of a received
// packet allocates nothing, whether its address is counted, pending or
// unknown (regression test: a key built from the address's text, as
// addrPort does for an address that is not a *net.UDPAddr, costs an
// allocation per packet on the receive path).
func TestPathGuardAdmitAllocatesNothing(t *testing.T) {
	p, counted, pending, unknown, ours := guardAddrs(t)
	short := append(append([]byte{0x43}, ours...), make([]byte, 40)...)
	long := append(append([]byte{0xe0, 0, 0, 0, 1, byte(len(ours))}, ours...), append([]byte{0, 0x40, 40}, make([]byte, 40)...)...)
	for _, c := range []struct {
		what string
		pkt  []byte
		addr net.Addr
	}{
		{"a short-header packet from a counted address", short, counted},
		{"a short-header packet from a pending address", short, pending},
		{"a short-header packet from an unknown address", short, unknown},
		{"a handshake packet from a pending address", long, pending},
	} {
		if n := testing.AllocsPerRun(200, func() { p.admitAt(c.pkt, addrPort(c.addr)) }); n != 0 {
			t.Errorf("%s: %.1f allocations per packet", c.what, n)
		}
	}
}

// TestPathDropsQuietWhenLinksClose: PathDrops counts packets refused for
// their source address (a path change, a member's spoofed packets, a NAT
// that rebound), which docs/METRICS.md exports for an operator to watch.
// Links opened and closed between two honest nodes, nothing moving, must
// not add to it: the last packets of a connection that just ended (its
// peer's acknowledgement or closing packet in flight) are not a path
// change.
func TestPathDropsQuietWhenLinksClose(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), tolerant)
	b := newNode(t, issue(t, ca, "b"), tolerant)
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		l, err := a.Dial(ctx, b.LocalAddr().String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		b.rec.waitEvent(t, "up", patience)
		_ = l.SendRouting([]byte("x"))
		b.rec.waitEvent(t, "routing", patience)
		closer := l
		if i%2 == 1 {
			closer = b.Link("a")
		}
		_ = closer.Close("done")
		a.rec.waitEvent(t, "down", patience)
		b.rec.waitEvent(t, "down", patience)
	}
	time.Sleep(500 * time.Millisecond)
	if da, db := a.PathDrops(), b.PathDrops(); da+db != 0 {
		t.Fatalf("10 links opened and closed, nothing moving: PathDrops %d at the dialler, %d at the acceptor", da, db)
	}
}
