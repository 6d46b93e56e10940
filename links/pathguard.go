package links

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"
	"golang.org/x/net/ipv4"
)

// Links refuse QUIC connection migration: a short-header (1-RTT) packet
// is handed to QUIC only when its source address (IP and port) is that
// of a connection of the node whose peer showed it receives there. An
// address is pending from the first packet of a connection the gate
// admitted, or from the node's own dial, until the peer answered: a
// handshake (long-header) packet from there addressed to a connection ID
// the node made and sent there first (only a receiver there knows it;
// ownIDs), or, at the latest, a certificate that verifies presented in
// the TLS handshake (verifying; TLS refuses one that does not, and checks
// the peer's signature with it just after). A
// pending address passes short-header packets addressed to a connection
// ID the node sent it, and pendingShort others (a peer's first 1-RTT
// packets may use a connection ID the node gave it in 1-RTT and arrive
// before its handshake packet). Every other short-header packet is
// dropped before QUIC sees it.
//
// So a member that has the node admit one spoofed first packet from an
// address, or dial an address its gossip claims, reflects at most
// pendingShort of its link's packets there, not as many as it likes.
// What this cannot stop: the node does not know which connection a
// short-header packet is for (quic-go tells no one the connection IDs it
// issues in 1-RTT), so packets of a member's link written with the
// address of another live connection of the node (a neighbour's) pass,
// and quic-go answers their PATH_CHALLENGEs there (docs/SECURITY.md).
//
// quic-go has no setting to refuse a client's path change: it answers a
// PATH_CHALLENGE from any new source address with a 1200-byte probe sent
// there, however small the packet was and however many came, and moves
// the connection once the address answered. So a member of the mesh
// could make a node send 35 times the bytes of its own small packets to
// any address it wrote as their source (a reflector against honest nodes
// or anyone; TestAttackMemberReflectsPathProbesAtThirdParty), and move a
// link to another address of its own after the handshake, under the
// address limits and records the node keeps per address (the gate's
// prefix, discovery's proven addresses, the address of a link in
// `peers`). The cost: a link whose peer's address changes (a NAT that
// rebinds) is lost and dialled again; see docs/SECURITY.md.
//
// Long-header packets (handshakes) pass: the gate and QUIC's own
// amplification limit bound them. A datagram is read as quic-go reads it,
// as coalesced packets (admitAt): its long-header packets pass, and the
// short-header packet after them is held to the rule above, or cut off.

// peerAddrs counts the node's connections per remote address. Each entry
// is a live connection, so the table is bounded by the connections the
// gate (inbound) and the dials (outbound) allow.
type peerAddrs struct {
	mu sync.RWMutex
	n  map[netip.AddrPort]int
	// pending holds, per address, the connections pending there and the
	// connection IDs (at most maxPendingIDs) the node sent it in
	// handshake packets.
	pending map[netip.AddrPort]*pendingAddr
	// dropped counts short-header packets from addresses with no
	// connection.
	dropped atomic.Uint64
	// own is the connection IDs the node made: only those, sent to a
	// pending address, are noted in its ids.
	own *ownIDs
	// ended holds, for at most maxEnded addresses whose last counted
	// connection ended, when their grace ends: until then their
	// short-header packets pass, uncounted (the peer's last
	// acknowledgements and closing packets in flight; quic-go ignores
	// them or answers as for a closed connection).
	ended map[netip.AddrPort]time.Time
	grace time.Duration
}

// endGrace is how long the address of a connection that ended still
// passes short-header packets; maxEnded bounds the addresses in grace.
const (
	endGrace = 3 * time.Second
	maxEnded = 1024
)

// maxPendingIDs bounds the connection IDs remembered per pending
// address; pendingShort is how many short-header packets a pending
// address that has not answered may send addressed to other connection
// IDs (a peer's first 1-RTT packets may use a connection ID the node
// gave it in its first 1-RTT packets, and arrive before its handshake
// packet).
const (
	maxPendingIDs = 4
	pendingShort  = 4
)

type pendingAddr struct {
	n   int
	ids [][]byte
	// answered: a handshake packet from the address was addressed to
	// one of ids, which only a receiver there knows.
	answered bool
	// short is what is left of pendingShort.
	short int
}

func newPeerAddrs() *peerAddrs {
	return &peerAddrs{n: make(map[netip.AddrPort]int), pending: make(map[netip.AddrPort]*pendingAddr),
		own: newOwnIDs(2 * DefaultHandshakeTimeout), ended: make(map[netip.AddrPort]time.Time), grace: endGrace}
}

// addPendingLocked counts one more (d = 1) or one fewer (d = -1)
// connection pending at a. p.mu is held.
func (p *peerAddrs) addPendingLocked(a netip.AddrPort, d int) {
	pa := p.pending[a]
	if pa == nil {
		pa = &pendingAddr{short: pendingShort}
		p.pending[a] = pa
	}
	if pa.n += d; pa.n <= 0 {
		delete(p.pending, a)
	}
}

// sent notes a packet the node sends to addr: the source connection ID
// of a handshake (long-header) packet to a pending address, if the node
// made it (ownIDs.claim). A Version Negotiation packet's, and that of
// quic-go's refusal of a handshake, are the destination connection ID of
// the packet they answer, which its sender chose.
func (p *peerAddrs) sent(pkt []byte, addr net.Addr) {
	if len(pkt) < 7 || pkt[0]&0x80 == 0 || binary.BigEndian.Uint32(pkt[1:5]) == 0 {
		return
	}
	dlen := int(pkt[5])
	if len(pkt) < 7+dlen {
		return
	}
	slen := int(pkt[6+dlen])
	if slen == 0 || len(pkt) < 7+dlen+slen {
		return
	}
	id := pkt[7+dlen : 7+dlen+slen]
	a := addrPort(addr)
	if !p.own.claim(id, a) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pa := p.pending[a]
	if pa == nil {
		return
	}
	for _, have := range pa.ids {
		if bytes.Equal(have, id) {
			return
		}
	}
	if len(pa.ids) >= maxPendingIDs {
		pa.ids = pa.ids[1:]
	}
	pa.ids = append(pa.ids, bytes.Clone(id))
}

// ownIDLen is the length of the node's connection IDs: quic-go's default.
const ownIDLen = 4

// maxOwnIDs bounds the connection IDs the node remembers having made.
const maxOwnIDs = 4096

// ownIDs is the node's quic.ConnectionIDGenerator: random IDs of ownIDLen
// bytes, as quic-go's default, the last maxOwnIDs of them remembered for
// ttl, each with the first address a handshake packet carried it to.
type ownIDs struct {
	ttl  time.Duration
	mu   sync.Mutex
	at   map[quic.ConnectionID]int // index in ring
	ring []ownID                   // grows to maxOwnIDs, then the oldest (at next) is replaced
	next int
}

type ownID struct {
	id   quic.ConnectionID
	made time.Time
	to   netip.AddrPort // the first address sent it (claim)
}

func newOwnIDs(ttl time.Duration) *ownIDs {
	return &ownIDs{ttl: ttl, at: make(map[quic.ConnectionID]int)}
}

// GenerateConnectionID is a new random connection ID, remembered.
func (g *ownIDs) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [ownIDLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return quic.ConnectionID{}, fmt.Errorf("links: connection ID: %w", err)
	}
	id := quic.ConnectionIDFromBytes(b[:])
	e := ownID{id: id, made: time.Now()}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ring) < maxOwnIDs {
		g.at[id] = len(g.ring)
		g.ring = append(g.ring, e)
		return id, nil
	}
	old := &g.ring[g.next]
	if i, ok := g.at[old.id]; ok && i == g.next {
		delete(g.at, old.id)
	}
	*old = e
	g.at[id] = g.next
	g.next = (g.next + 1) % maxOwnIDs
	return id, nil
}

// ConnectionIDLen is ownIDLen.
func (g *ownIDs) ConnectionIDLen() int { return ownIDLen }

// claim says whether the node made id within ttl and a is the first
// address a handshake packet carried it to (a is then noted, if none
// was). A connection sends its handshake packets to one address; quic-go
// sends a closed connection's last packet to the source of any packet
// that arrives for it, and may thus carry the connection's ID to another
// address, which learns nothing from it.
func (g *ownIDs) claim(id []byte, a netip.AddrPort) bool {
	if len(id) != ownIDLen {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	i, ok := g.at[quic.ConnectionIDFromBytes(id)]
	if !ok || time.Since(g.ring[i].made) > g.ttl {
		return false
	}
	e := &g.ring[i]
	if !e.to.IsValid() {
		e.to = a
	}
	return e.to == a
}

// generator is the quic.ConnectionIDGenerator of the node's transport:
// its IDs are remembered for ttl.
func (p *peerAddrs) generator(ttl time.Duration) quic.ConnectionIDGenerator {
	p.own.ttl = ttl
	return p.own
}

// pathReg is one connection's count in peerAddrs: from reach (its peer
// proved it receives at the address) to end (the connection ended).
type pathReg struct {
	p       *peerAddrs
	a       netip.AddrPort
	mu      sync.Mutex
	counted bool
	ended   bool
}

// register is the registration of a connection with addr, pending
// until it reaches.
func (p *peerAddrs) register(addr net.Addr) *pathReg {
	r := &pathReg{p: p, a: addrPort(addr)}
	p.mu.Lock()
	p.addPendingLocked(r.a, 1)
	p.mu.Unlock()
	return r
}

// reach counts the connection (once, unless it ended).
func (r *pathReg) reach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counted || r.ended {
		return
	}
	r.counted = true
	r.p.mu.Lock()
	r.p.addPendingLocked(r.a, -1)
	r.p.n[r.a]++
	r.p.mu.Unlock()
}

// end uncounts the connection; it is idempotent.
func (r *pathReg) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	if !r.counted {
		r.p.addPendingLocked(r.a, -1)
		return
	}
	if r.p.n[r.a]--; r.p.n[r.a] <= 0 {
		delete(r.p.n, r.a)
		r.p.graceLocked(r.a, time.Now())
	}
}

// graceLocked puts a in grace from now (unless maxEnded addresses are in
// grace). p.mu is held.
func (p *peerAddrs) graceLocked(a netip.AddrPort, now time.Time) {
	if len(p.ended) >= maxEnded {
		for e, until := range p.ended {
			if now.After(until) {
				delete(p.ended, e)
			}
		}
		if len(p.ended) >= maxEnded {
			return
		}
	}
	p.ended[a] = now.Add(p.grace)
}

// answered says whether a handshake packet from addr, pending, was
// addressed to a connection ID the node sent there (pendingAddr.answered):
// only a receiver there knows it.
func (p *peerAddrs) answered(addr net.Addr) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pa := p.pending[addrPort(addr)]
	return pa != nil && pa.answered
}

// inGrace says whether a connection at a ended within the grace.
func (p *peerAddrs) inGrace(a netip.AddrPort) bool {
	p.mu.RLock()
	until, ok := p.ended[a]
	p.mu.RUnlock()
	return ok && time.Now().Before(until)
}

// verifying is the node's TLS configuration for a connection with
// remote: TLS refuses a peer certificate that does not verify against the
// node's identity (a certificate of the mesh; in development mode,
// Identity.Insecure, any certificate) before the node installs the key to
// read the peer's 1-RTT packets, and counts the connection of r (nil:
// none) once the certificate verified. inbound: the refusal is reported as
// that of an inbound link (refusedIn).
func (t *QUICTransport) verifying(r *pathReg, remote net.Addr, inbound bool) *tls.Config {
	c := t.tlsConf.Clone()
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		id := t.identity()
		if _, err := id.VerifyPeer(rawCerts(cs.PeerCertificates), time.Now()); err != nil {
			err = certRejected(remote.String(), id.Node, err)
			if inbound {
				t.refusedIn(remote, fmt.Errorf("%w: %w", ErrRefused, err))
			}
			return err
		}
		if r != nil {
			r.reach()
		}
		return nil
	}
	return c
}

type pathKey struct{}

// serverConfig is tls.Config.GetConfigForClient of the node's listener
// (verifying): the connection's registration (connContext) counts once
// the client's certificate verified.
func (t *QUICTransport) serverConfig(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	r, _ := hello.Context().Value(pathKey{}).(*pathReg)
	return t.verifying(r, hello.Conn.RemoteAddr(), true), nil
}

// admitAt is how many bytes of the datagram pkt from a QUIC gets, read as
// quic-go reads it: long-header (handshake) packets, each cut by its
// Length, then at most one short-header packet, the rest of the datagram.
// The long-header packets always pass (one addressed to a connection ID
// the node sent a answers for a); the short-header packet passes if a is
// that of a connection whose peer answered there, or it is addressed to a
// connection ID the node sent a, or it is one of the first pendingShort
// of a pending address, or a connection at a ended within the grace
// (uncounted). A refused short-header packet is cut off the
// datagram (n is then the length of the long-header packets before it, 0
// for a short-header datagram) and counted. Bytes after the long-header
// packets that do not parse as quic-go parses them are cut off unless a
// short-header packet from a would pass without using pendingShort
// (quic-go drops them too). reached says a is that of a connection whose
// peer answered there.
func (p *peerAddrs) admitAt(pkt []byte, a netip.AddrPort) (n int, reached bool) {
	if len(pkt) == 0 {
		return 0, false
	}
	p.mu.RLock()
	reached = p.n[a] > 0
	pa := p.pending[a]
	open := reached || pa != nil && pa.answered
	long, mark := 0, false
	for long < len(pkt) && pkt[long]&0x80 != 0 {
		l, dcid := longPacket(pkt[long:])
		if l == 0 {
			break
		}
		if !open && pa != nil && len(dcid) > 0 && pa.has(dcid) {
			mark, open = true, true
		}
		long += l
	}
	short := long < len(pkt) && pkt[long]&0x80 == 0
	pass := long == len(pkt) || open || short && pa != nil && pa.has(pkt[long+1:])
	p.mu.RUnlock()
	if mark || !pass && short && pa != nil {
		p.mu.Lock()
		if pa := p.pending[a]; pa != nil {
			if mark {
				pa.answered = true
			}
			if !pass && short && pa.short > 0 {
				pa.short--
				pass = true
			}
		}
		p.mu.Unlock()
	}
	if pass || short && p.inGrace(a) {
		return len(pkt), reached
	}
	if short {
		p.dropped.Add(1)
	}
	return long, reached
}

// longPacket is the length of the long-header packet at the start of b
// and its destination connection ID, as quic-go's wire.ParsePacket cuts
// it: by its Length field; a Retry, a Version Negotiation packet or one
// of a version quic-go does not speak takes the rest of b (quic-go reads
// nothing after it). n is 0 if b does not parse.
func longPacket(b []byte) (n int, dcid []byte) {
	const maxIDLen = 20
	if len(b) < 7 {
		return 0, nil
	}
	version := quic.Version(binary.BigEndian.Uint32(b[1:5]))
	if version != 0 && b[0]&0x40 == 0 {
		return 0, nil
	}
	dlen := int(b[5])
	if dlen > maxIDLen || len(b) < 7+dlen {
		return 0, nil
	}
	dcid = b[6 : 6+dlen]
	slen := int(b[6+dlen])
	i := 7 + dlen + slen
	if slen > maxIDLen || len(b) < i {
		return 0, nil
	}
	if version != quic.Version1 && version != quic.Version2 {
		return len(b), dcid
	}
	typ := b[0] >> 4 & 3
	if version == quic.Version2 {
		typ = (typ + 3) & 3 // v2 numbers the types one up (RFC 9369)
	}
	switch typ {
	case 3: // Retry: a token and a 16-byte integrity tag
		if len(b)-i <= 16 {
			return 0, nil
		}
		return len(b), dcid
	case 0: // Initial: a token first
		tlen, k, err := quicvarint.Parse(b[i:])
		if err != nil || tlen > uint64(len(b)-i-k) {
			return 0, nil
		}
		i += k + int(tlen)
	}
	length, k, err := quicvarint.Parse(b[i:])
	if err != nil || length > uint64(len(b)-i-k) {
		return 0, nil
	}
	return i + k + int(length), dcid
}

// has says whether b starts with one of the connection IDs sent. p.mu
// is held.
func (pa *pendingAddr) has(b []byte) bool {
	for _, id := range pa.ids {
		if bytes.HasPrefix(b, id) {
			return true
		}
	}
	return false
}

// PathDrops counts the short-header packets dropped because their source
// address was not that of a connection of the node: a peer's path
// change, a member's packets written with another source address, or a
// peer whose NAT rebound its address (a short-header packet cut off a
// datagram behind handshake packets included). Packets from the address
// of a connection that ended within endGrace are passed, not counted.
func (t *QUICTransport) PathDrops() uint64 { return t.paths.dropped.Load() }

// guardPacketConn filters what QUIC reads from a net.PacketConn.
type guardPacketConn struct {
	net.PacketConn
	addrs *peerAddrs
}

func (c *guardPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.addrs.sent(b, addr)
	return c.PacketConn.WriteTo(b, addr)
}

func (c *guardPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	return c.addrs.readFrom(b, c.PacketConn.ReadFrom)
}

// SetReadBuffer and SetWriteBuffer pass QUIC's socket buffer sizes on to
// the connection guarded when it takes them, and fail as QUIC would for
// one that does not (QUIC then logs that once). A simulated network's
// connection takes them: the guard hid its methods, and QUIC logged that
// it "doesn't allow setting of receive buffer size".
func (c *guardPacketConn) SetReadBuffer(n int) error {
	if s, ok := c.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return s.SetReadBuffer(n)
	}
	return errNoSocketBuffers
}

func (c *guardPacketConn) SetWriteBuffer(n int) error {
	if s, ok := c.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return s.SetWriteBuffer(n)
	}
	return errNoSocketBuffers
}

// errNoSocketBuffers: the PacketConn a transport was given takes no
// buffer sizes.
var errNoSocketBuffers = errors.New("connection doesn't allow setting of socket buffer sizes: not a *net.UDPConn")

// readFrom reads with read until a datagram is admitted, and returns the
// length of what is (admitAt).
func (p *peerAddrs) readFrom(b []byte, read func([]byte) (int, net.Addr, error)) (int, net.Addr, error) {
	for {
		n, a, err := read(b)
		if err != nil {
			return n, a, err
		}
		if n, _ = p.admitAt(b[:n], addrPort(a)); n > 0 {
			return n, a, nil
		}
	}
}

// guardUDPConn filters what QUIC reads from a UDP socket and keeps what
// quic-go uses it for (batched reads, ECN, GSO, packet info).
type guardUDPConn struct {
	*net.UDPConn
	batch *ipv4.PacketConn
	addrs *peerAddrs
}

func (c *guardUDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.addrs.sent(b, addr)
	return c.UDPConn.WriteTo(b, addr)
}

func (c *guardUDPConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	c.addrs.sent(b, addr)
	return c.UDPConn.WriteMsgUDP(b, oob, addr)
}

func (c *guardUDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	return c.addrs.readFrom(b, c.UDPConn.ReadFrom)
}

func (c *guardUDPConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	for {
		n, oobn, flags, addr, err = c.UDPConn.ReadMsgUDP(b, oob)
		if err != nil {
			return n, oobn, flags, addr, err
		}
		if n, _ = c.addrs.admitAt(b[:n], addrPort(addr)); n > 0 {
			return n, oobn, flags, addr, nil
		}
	}
}

// ReadBatch is what quic-go reads with. The messages it keeps (cut as
// admitAt says) move to the front (their bytes copied into the earlier
// buffers: quic-go pairs each message index with its buffer).
func (c *guardUDPConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	for {
		n, err := c.batch.ReadBatch(ms, flags)
		if err != nil {
			return n, err
		}
		k := 0
		// The last source found reached in this batch: a batch holds
		// mostly one busy link's packets.
		var reached netip.AddrPort
		for i := range ms[:n] {
			m := &ms[i]
			pkt, a := m.Buffers[0][:m.N], addrPort(m.Addr)
			if !reached.IsValid() || a != reached || len(pkt) == 0 || pkt[0]&0x80 != 0 {
				var r bool
				if m.N, r = c.addrs.admitAt(pkt, a); r {
					reached = a
				}
			}
			if m.N == 0 {
				continue
			}
			if k != i {
				to := &ms[k]
				to.N = copy(to.Buffers[0], m.Buffers[0][:m.N])
				to.NN = copy(to.OOB, m.OOB[:m.NN])
				to.Flags, to.Addr = m.Flags, m.Addr
			}
			k++
		}
		if k > 0 {
			return k, nil
		}
	}
}

// guardConn is pc with the packets of unknown paths filtered out.
func guardConn(pc net.PacketConn, addrs *peerAddrs) net.PacketConn {
	if udp, ok := pc.(*net.UDPConn); ok {
		return &guardUDPConn{UDPConn: udp, batch: ipv4.NewPacketConn(udp), addrs: addrs}
	}
	return &guardPacketConn{PacketConn: pc, addrs: addrs}
}

// quic-go reads a guardUDPConn in batches and keeps its UDP optimizations.
var _ interface {
	quic.OOBCapablePacketConn
	ReadBatch([]ipv4.Message, int) (int, error)
} = (*guardUDPConn)(nil)
