package simulate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/node"
)

// Gossip ports of every simulated node: memberlist's datagrams on
// gossipPort; on the QUIC backend its streams run over QUIC on
// gossipStreamPort of the same address.
const (
	gossipPort       = 7946
	gossipStreamPort = 7947
)

// Bounds of a gossip transport's queues and tables.
const (
	gossipPacketQueue = 1024 // received packets not yet read by memberlist
	gossipStreamQueue = 64   // accepted streams not yet taken by memberlist
	gossipMaxConns    = 256  // cached outgoing QUIC connections per node
	gossipIdleTimeout = 30 * time.Second
)

// ErrGossipClosed: the gossip transport was shut down.
var ErrGossipClosed = errors.New("gossip transport closed")

// errGossipBlocked: the underlay does not carry traffic between the two
// nodes (a cut, partition or crashed node on the mem backend).
var errGossipBlocked = errors.New("no route to the gossip peer")

// GossipStats counts the traffic of every gossip transport of a cluster.
type GossipStats struct {
	Packets     int64 `json:"packets"`      // datagrams sent
	PacketBytes int64 `json:"packet_bytes"` // their payload bytes
	Streams     int64 `json:"streams"`      // streams opened (push-pull, joins, fallback probes)
	StreamBytes int64 `json:"stream_bytes"` // bytes written on streams, both ends
}

// gossipNet carries the memberlist gossip of a cluster's nodes over the
// simulated network. Datagrams cross a packetNet of the gossip's own whose
// pairs of nodes mirror the links' network: on the QUIC backend the same
// latency, loss, cuts, partitions and crashes per pair (loss drawn from
// random streams of its own), on mem the same latency but no loss, blocked
// like the memlink links. (A packetNet of its own because packetNet keeps one
// in-flight queue per pair of nodes, which assumes one socket per node.)
// Streams are QUIC streams over that packetNet on the QUIC backend (so
// they see the same loss and delay as links, and retransmit), and
// in-memory pipes on mem, severed at once by a cut or a crash as memlink
// links are.
type gossipNet struct {
	pn      *packetNet
	useQUIC bool

	serverTLS, clientTLS *tls.Config

	mu    sync.Mutex
	ips   map[string]net.IP           // node → gossip IP
	byIP  map[string]string           // gossip IP → node
	live  map[string]*gossipTransport // node → its current transport
	pipes map[pair]map[*pipeConn]struct{}

	packets, packetBytes, streams, streamBytes atomic.Int64
}

func newGossipNet(seed uint64, useQUIC bool) (*gossipNet, error) {
	g := &gossipNet{pn: newPacketNet(seed ^ 0x60551b), useQUIC: useQUIC, ips: map[string]net.IP{}, byIP: map[string]string{},
		live: map[string]*gossipTransport{}, pipes: map[pair]map[*pipeConn]struct{}{}}
	if useQUIC {
		cert, pool, err := gossipCert()
		if err != nil {
			return nil, err
		}
		g.serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"circuitmesh-sim-gossip"}}
		g.clientTLS = &tls.Config{RootCAs: pool, ServerName: "gossip.sim", NextProtos: []string{"circuitmesh-sim-gossip"}}
	}
	return g, nil
}

// gossipCert makes the throwaway certificate that the simulated gossip
// streams' QUIC handshakes use.
func gossipCert() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("gossip certificate key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gossip.sim"},
		DNSNames: []string{"gossip.sim"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(1000 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("gossip certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("gossip certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// addr returns the gossip address of node name, giving it an IP the first
// time.
func (g *gossipNet) addr(name string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return net.JoinHostPort(g.ipLocked(name).String(), strconv.Itoa(gossipPort))
}

func (g *gossipNet) ipLocked(name string) net.IP {
	ip := g.ips[name]
	if ip == nil {
		i := len(g.ips) + 1
		ip = net.IPv4(10, 128+byte(i>>16), byte(i>>8), byte(i))
		g.ips[name], g.byIP[ip.String()] = ip, name
	}
	return ip
}

// stats returns the traffic so far.
func (g *gossipNet) stats() GossipStats {
	return GossipStats{Packets: g.packets.Load(), PacketBytes: g.packetBytes.Load(),
		Streams: g.streams.Load(), StreamBytes: g.streamBytes.Load()}
}

// setParams mirrors the latency and loss of a pair. On mem only the
// latency: memlink links carry no loss, and without the delay memberlist's
// probes would measure no RTT, leaving the nodes' network coordinates (and
// so the link policy's choice of near neighbours) without proximity.
func (g *gossipNet) setParams(a, b string, p LinkParams) {
	if !g.useQUIC {
		p = LinkParams{Latency: p.Latency}
	}
	g.pn.setParams(a, b, p)
}

// block mirrors a cut or heal of the pair and severs the in-memory
// streams between them.
func (g *gossipNet) block(a, b string, blocked bool) {
	g.pn.setBlocked(a, b, blocked)
	if blocked {
		g.sever(func(p pair) bool { return p == mkpair(a, b) })
	}
}

// setDown mirrors a crash (or restart) and severs the node's in-memory
// streams.
func (g *gossipNet) setDown(name string, down bool) {
	g.pn.setDown(name, down)
	if down {
		g.sever(func(p pair) bool { return p.a == name || p.b == name })
	}
}

func (g *gossipNet) sever(match func(pair) bool) {
	g.mu.Lock()
	var cs []*pipeConn
	for p, set := range g.pipes {
		if match(p) {
			for c := range set {
				cs = append(cs, c)
			}
		}
	}
	g.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// shutdown stops all gossip datagrams (the cluster is closing).
func (g *gossipNet) shutdown() { g.pn.shutdown() }

func (g *gossipNet) close() { g.pn.close() }

// transport makes node name's gossip transport for one start of the node.
func (g *gossipNet) transport(name string) (*gossipTransport, error) {
	g.mu.Lock()
	ip := g.ipLocked(name)
	g.mu.Unlock()
	pc, err := g.pn.listen(name, &net.UDPAddr{IP: ip, Port: gossipPort})
	if err != nil {
		return nil, fmt.Errorf("gossip socket of %s: %w", name, err)
	}
	t := &gossipTransport{g: g, name: name, ip: ip, pc: pc,
		packetCh: make(chan *memberlist.Packet, gossipPacketQueue),
		streamCh: make(chan net.Conn, gossipStreamQueue),
		done:     make(chan struct{}), conns: map[string]*quic.Conn{}}
	if g.useQUIC {
		spc, err := g.pn.listen(name, &net.UDPAddr{IP: ip, Port: gossipStreamPort})
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("gossip stream socket of %s: %w", name, err)
		}
		t.spc = spc
		t.qt = &quic.Transport{Conn: spc}
		ln, err := t.qt.Listen(g.serverTLS, t.quicConfig())
		if err != nil {
			pc.Close()
			spc.Close()
			return nil, fmt.Errorf("gossip stream listener of %s: %w", name, err)
		}
		t.ln = ln
		t.wg.Add(1)
		go t.acceptConns()
	}
	t.wg.Add(1)
	go t.readPackets()
	g.mu.Lock()
	g.live[name] = t
	g.mu.Unlock()
	return t, nil
}

// gossipTransport is one node's memberlist.NodeAwareTransport on a
// gossipNet. Every goroutine it starts ends on Shutdown.
type gossipTransport struct {
	g    *gossipNet
	name string
	ip   net.IP
	pc   *packetConn // datagrams

	spc *packetConn // QUIC streams (QUIC backend)
	qt  *quic.Transport
	ln  *quic.Listener

	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup

	mu    sync.Mutex
	conns map[string]*quic.Conn // stream address → cached outgoing connection
}

var _ node.PlainGossipTransport = (*gossipTransport)(nil)

func (t *gossipTransport) quicConfig() *quic.Config {
	return &quic.Config{MaxIdleTimeout: gossipIdleTimeout, HandshakeIdleTimeout: 10 * time.Second,
		MaxIncomingStreams: gossipStreamQueue, MaxIncomingUniStreams: -1}
}

// FinalAdvertiseAddr implements memberlist.Transport: the node's gossip
// address (a configured one when given).
func (t *gossipTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return nil, 0, fmt.Errorf("gossip advertise address %q is not an IP", ip)
		}
		return parsed, port, nil
	}
	return t.ip, gossipPort, nil
}

// WriteTo implements memberlist.Transport: one datagram, lost or delayed
// as the underlay says.
func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, fmt.Errorf("gossip to %s: %w", addr, err)
	}
	if _, err := t.pc.WriteTo(b, ua); err != nil {
		return time.Time{}, fmt.Errorf("gossip to %s: %w", addr, err)
	}
	t.g.packets.Add(1)
	t.g.packetBytes.Add(int64(len(b)))
	return time.Now(), nil
}

// PlainGossip implements node.PlainGossipTransport: on mem, where a
// datagram's size costs nothing (no bandwidth limit, no loss),
// memberlist's compression of every datagram is only work, the largest
// single cost of a few hundred nodes' gossip, so memberlist sends them
// uncompressed. On QUIC, where bandwidth= and queue= make size matter,
// gossip is compressed as in the daemon.
func (t *gossipTransport) PlainGossip() bool { return !t.g.useQUIC }

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *gossipTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, a.Addr)
}

func (t *gossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *gossipTransport) StreamCh() <-chan net.Conn           { return t.streamCh }

// readPackets moves received datagrams to PacketCh; when memberlist does
// not keep up, the socket's own bounded buffer drops them.
func (t *gossipTransport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := t.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		p := &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: time.Now()}
		select {
		case t.packetCh <- p:
		case <-t.done:
			return
		}
	}
}

// DialTimeout implements memberlist.Transport: a reliable stream to the
// node at addr.
func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("gossip dial %s: %w", addr, err)
	}
	t.g.mu.Lock()
	peer, ok := t.g.byIP[host]
	t.g.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("gossip dial %s: %w", addr, errGossipBlocked)
	}
	var c net.Conn
	if t.g.useQUIC {
		c, err = t.dialQUIC(host, timeout)
	} else {
		c, err = t.dialPipe(peer)
	}
	if err != nil {
		return nil, fmt.Errorf("gossip dial %s (%s) from %s: %w", addr, peer, t.name, err)
	}
	t.g.streams.Add(1)
	return c, nil
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *gossipTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// dialQUIC opens a stream on a cached QUIC connection to the peer's
// stream socket, making the connection when there is none.
func (t *gossipTransport) dialQUIC(host string, timeout time.Duration) (net.Conn, error) {
	raddr := &net.UDPAddr{IP: net.ParseIP(host), Port: gossipStreamPort}
	key := raddr.String()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case <-t.done:
		return nil, ErrGossipClosed
	default:
	}
	t.mu.Lock()
	qc := t.conns[key]
	t.mu.Unlock()
	if qc == nil || qc.Context().Err() != nil {
		var err error
		if qc, err = t.qt.Dial(ctx, raddr, t.g.clientTLS, t.quicConfig()); err != nil {
			return nil, err
		}
		t.mu.Lock()
		if len(t.conns) >= gossipMaxConns {
			for k, old := range t.conns {
				if old.Context().Err() != nil || len(t.conns) >= gossipMaxConns {
					delete(t.conns, k)
					old.CloseWithError(0, "")
				}
				if len(t.conns) < gossipMaxConns {
					break
				}
			}
		}
		t.conns[key] = qc
		t.mu.Unlock()
	}
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &quicStreamConn{Stream: s, qc: qc, g: t.g}, nil
}

// acceptConns accepts QUIC connections and hands their streams to
// memberlist.
func (t *gossipTransport) acceptConns() {
	defer t.wg.Done()
	for {
		qc, err := t.ln.Accept(context.Background())
		if err != nil {
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			for {
				s, err := qc.AcceptStream(context.Background())
				if err != nil {
					return
				}
				select {
				case t.streamCh <- &quicStreamConn{Stream: s, qc: qc, g: t.g}:
				case <-t.done:
					s.CancelRead(0)
					s.CancelWrite(0)
					return
				}
			}
		}()
	}
}

// dialPipe connects an in-memory stream to the peer's transport (mem
// backend): refused at once when the pair is cut or either end is down.
func (t *gossipTransport) dialPipe(peer string) (net.Conn, error) {
	g := t.g
	g.pn.mu.Lock()
	blocked := g.pn.blocked[mkpair(t.name, peer)] || g.pn.down[t.name] || g.pn.down[peer]
	g.pn.mu.Unlock()
	if blocked {
		return nil, errGossipBlocked
	}
	g.mu.Lock()
	remote := g.live[peer]
	if remote == nil {
		g.mu.Unlock()
		return nil, errGossipBlocked
	}
	a, b := net.Pipe()
	p := mkpair(t.name, peer)
	local := &pipeConn{Conn: a, g: g, p: p, local: t.addr(), remote: remote.addr()}
	far := &pipeConn{Conn: b, g: g, p: p, local: remote.addr(), remote: t.addr()}
	if g.pipes[p] == nil {
		g.pipes[p] = map[*pipeConn]struct{}{}
	}
	g.pipes[p][local] = struct{}{}
	g.pipes[p][far] = struct{}{}
	g.mu.Unlock()
	select {
	case remote.streamCh <- far:
		return local, nil
	case <-remote.done:
	case <-t.done:
	default: // the peer's accept queue is full: refused, as a full backlog
	}
	local.Close()
	return nil, errGossipBlocked
}

func (t *gossipTransport) addr() net.Addr { return &net.TCPAddr{IP: t.ip, Port: gossipPort} }

// Shutdown implements memberlist.Transport: closes the sockets and
// connections and waits for the transport's goroutines.
func (t *gossipTransport) Shutdown() error {
	t.once.Do(func() {
		close(t.done)
		t.g.mu.Lock()
		if t.g.live[t.name] == t {
			delete(t.g.live, t.name)
		}
		t.g.mu.Unlock()
		t.pc.Close()
		if t.qt != nil {
			t.ln.Close()
			t.mu.Lock()
			for _, qc := range t.conns {
				qc.CloseWithError(0, "")
			}
			t.mu.Unlock()
			t.qt.Close()
			t.spc.Close()
		}
	})
	t.wg.Wait()
	return nil
}

// quicStreamConn is a QUIC stream as a net.Conn. Close ends both
// directions of the stream; the connection stays cached for later
// streams.
type quicStreamConn struct {
	*quic.Stream
	qc *quic.Conn
	g  *gossipNet
}

func (c *quicStreamConn) Write(b []byte) (int, error) {
	n, err := c.Stream.Write(b)
	c.g.streamBytes.Add(int64(n))
	return n, err
}

func (c *quicStreamConn) Close() error {
	c.Stream.CancelRead(0)
	return c.Stream.Close()
}

func (c *quicStreamConn) LocalAddr() net.Addr  { return c.qc.LocalAddr() }
func (c *quicStreamConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// pipeConn is one end of an in-memory gossip stream (mem backend).
type pipeConn struct {
	net.Conn
	g             *gossipNet
	p             pair
	local, remote net.Addr
	once          sync.Once
}

func (c *pipeConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.g.streamBytes.Add(int64(n))
	return n, err
}

// Close closes this end (the peer reads EOF) and forgets it.
func (c *pipeConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		if set := c.g.pipes[c.p]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(c.g.pipes, c.p)
			}
		}
		c.g.mu.Unlock()
		c.Conn.Close()
	})
	return nil
}

func (c *pipeConn) LocalAddr() net.Addr  { return c.local }
func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }
