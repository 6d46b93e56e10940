package links

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"
	"golang.org/x/net/ipv4"
)

// Links refuse QUIC connection migration: a short-header (1-RTT) packet
// is handed to QUIC only when its source address (IP and port) is the
// address of a connection of the node whose peer proved, in the TLS
// handshake, that it receives there: a connection it dialled once the
// peer's handshake messages came (they answer what the node sent there),
// or one it accepted once the client's certificate came (it answers the
// node's handshake messages sent there). Every other short-header packet
// is dropped before QUIC sees it. An address counts from the TLS
// handshake, not from the first packet: else a member could have the
// node admit one spoofed first packet, or dial an address gossip claims
// for it, and reflect its link's packets at that address meanwhile. QUIC
// decrypts no 1-RTT packet of a connection before that point.
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
// amplification limit bound them.

// peerAddrs counts the node's connections per remote address. Each entry
// is a live connection, so the table is bounded by the connections the
// gate (inbound) and the dials (outbound) allow.
type peerAddrs struct {
	mu sync.RWMutex
	n  map[netip.AddrPort]int
	// dropped counts short-header packets from addresses with no
	// connection.
	dropped atomic.Uint64
}

func newPeerAddrs() *peerAddrs { return &peerAddrs{n: make(map[netip.AddrPort]int)} }

// pathReg is one connection's count in peerAddrs: from reach (its peer
// proved it receives at the address) to end (the connection ended).
type pathReg struct {
	p       *peerAddrs
	a       netip.AddrPort
	mu      sync.Mutex
	counted bool
	ended   bool
}

// pending is the registration of a connection with addr, not counted
// until it reaches.
func (p *peerAddrs) pending(addr net.Addr) *pathReg { return &pathReg{p: p, a: addrPort(addr)} }

// reach counts the connection (once, unless it ended).
func (r *pathReg) reach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counted || r.ended {
		return
	}
	r.counted = true
	r.p.mu.Lock()
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
	if !r.counted {
		return
	}
	r.p.mu.Lock()
	if r.p.n[r.a]--; r.p.n[r.a] <= 0 {
		delete(r.p.n, r.a)
	}
	r.p.mu.Unlock()
}

// verifying is conf, cloned, with the connection of r counted once the
// TLS handshake reaches the peer's certificate.
func (r *pathReg) verifying(conf *tls.Config) *tls.Config {
	c := conf.Clone()
	c.VerifyConnection = func(tls.ConnectionState) error {
		if r != nil {
			r.reach()
		}
		return nil
	}
	return c
}

type pathKey struct{}

// serverConfig is tls.Config.GetConfigForClient of the node's listener:
// the connection's registration (connContext) counts once the client's
// certificate came.
func (t *QUICTransport) serverConfig(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	r, _ := hello.Context().Value(pathKey{}).(*pathReg)
	return r.verifying(t.tlsConf), nil
}

// admit says whether QUIC gets the packet pkt from addr.
func (p *peerAddrs) admit(pkt []byte, addr net.Addr) bool {
	if len(pkt) > 0 && pkt[0]&0x80 != 0 {
		return true // a long header: a handshake
	}
	p.mu.RLock()
	ok := p.n[addrPort(addr)] > 0
	p.mu.RUnlock()
	if !ok {
		p.dropped.Add(1)
	}
	return ok
}

// PathDrops counts the short-header packets dropped because their source
// address was not that of a connection of the node: a peer's path
// change, a member's packets written with another source address, or a
// peer whose NAT rebound its address.
func (t *QUICTransport) PathDrops() uint64 { return t.paths.dropped.Load() }

// guardPacketConn filters what QUIC reads from a net.PacketConn.
type guardPacketConn struct {
	net.PacketConn
	addrs *peerAddrs
}

func (c *guardPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	return c.addrs.readFrom(b, c.PacketConn.ReadFrom)
}

// readFrom reads with read until a packet is admitted.
func (p *peerAddrs) readFrom(b []byte, read func([]byte) (int, net.Addr, error)) (int, net.Addr, error) {
	for {
		n, a, err := read(b)
		if err != nil || p.admit(b[:n], a) {
			return n, a, err
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

func (c *guardUDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	return c.addrs.readFrom(b, c.UDPConn.ReadFrom)
}

func (c *guardUDPConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	for {
		n, oobn, flags, addr, err = c.UDPConn.ReadMsgUDP(b, oob)
		if err != nil || c.addrs.admit(b[:n], addr) {
			return n, oobn, flags, addr, err
		}
	}
}

// ReadBatch is what quic-go reads with. The messages it keeps move to the
// front (their bytes copied into the earlier buffers: quic-go pairs each
// message index with its buffer).
func (c *guardUDPConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	for {
		n, err := c.batch.ReadBatch(ms, flags)
		if err != nil {
			return n, err
		}
		k := 0
		for i := range ms[:n] {
			m := &ms[i]
			if !c.addrs.admit(m.Buffers[0][:m.N], m.Addr) {
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
