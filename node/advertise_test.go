package node

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// portForward relays to a node's sockets as a NAT's port forward does:
// UDP datagrams (and, with tcp, TCP connections) arriving at its own
// address go on to the address set with setTo, from a socket of their
// own per client, and the answers come back. Close ends every goroutine.
type portForward struct {
	udp *net.UDPConn
	tcp *net.TCPListener // nil: UDP only
	to  atomic.Pointer[net.UDPAddr]

	mu      sync.Mutex
	clients map[netip.AddrPort]*net.UDPConn // client → its upstream socket
	conns   map[net.Conn]bool               // TCP connections open
	closed  bool
	wg      sync.WaitGroup
}

// maxForwardClients bounds a portForward's UDP clients and TCP connections.
const maxForwardClients = 64

// newPortForward listens on a free loopback port, UDP and, with tcp, TCP
// too on the same port (as memberlist's gossip does), relaying nothing
// until setTo. The test's cleanup closes it.
func newPortForward(t *testing.T, tcp bool) *portForward {
	t.Helper()
	f := &portForward{clients: map[netip.AddrPort]*net.UDPConn{}, conns: map[net.Conn]bool{}}
	for try := 0; f.udp == nil; try++ {
		if try == 20 {
			t.Fatal("no free loopback port for UDP and TCP")
		}
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if tcp {
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: u.LocalAddr().(*net.UDPAddr).Port})
			if err != nil {
				u.Close() // the port is taken on TCP: another one
				continue
			}
			f.tcp = l
		}
		f.udp = u
	}
	t.Cleanup(f.close)
	f.wg.Add(1)
	go f.relayUDP()
	if f.tcp != nil {
		f.wg.Add(1)
		go f.relayTCP()
	}
	return f
}

func (f *portForward) addr() string { return f.udp.LocalAddr().String() }

func (f *portForward) setTo(a net.Addr) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		panic(err)
	}
	f.to.Store(net.UDPAddrFromAddrPort(ap))
}

// sawClient says whether datagrams from a went through f.
func (f *portForward) sawClient(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	return err == nil && f.clients[ap] != nil
}

func (f *portForward) relayUDP() {
	defer f.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := f.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		to := f.to.Load()
		if to == nil {
			continue
		}
		up := f.upstream(from)
		if up != nil {
			_, _ = up.WriteToUDP(buf[:n], to)
		}
	}
}

// upstream is the socket that relays client's datagrams, made at its
// first; nil when f is closed or full.
func (f *portForward) upstream(client netip.AddrPort) *net.UDPConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if up := f.clients[client]; up != nil || f.closed || len(f.clients) >= maxForwardClients {
		return up
	}
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil
	}
	f.clients[client] = up
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			_, _ = f.udp.WriteToUDPAddrPort(buf[:n], client)
		}
	}()
	return up
}

func (f *portForward) relayTCP() {
	defer f.wg.Done()
	for {
		c, err := f.tcp.Accept()
		if err != nil {
			return
		}
		to := f.to.Load()
		var up net.Conn
		if to != nil {
			up, err = net.DialTimeout("tcp", to.String(), 5*time.Second)
		}
		if to == nil || err != nil || !f.track(c, up) {
			c.Close()
			continue
		}
		for _, p := range [2][2]net.Conn{{up, c}, {c, up}} {
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				_, _ = io.Copy(p[0], p[1])
				f.untrack(p[0], p[1])
			}()
		}
	}
}

// track records a relayed connection's two ends; false (up closed) when
// f is closed or full.
func (f *portForward) track(c, up net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || len(f.conns) >= 2*maxForwardClients {
		up.Close()
		return false
	}
	f.conns[c], f.conns[up] = true, true
	return true
}

func (f *portForward) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(f.conns, c)
	}
}

func (f *portForward) close() {
	f.mu.Lock()
	f.closed = true
	f.udp.Close()
	if f.tcp != nil {
		f.tcp.Close()
	}
	for _, up := range f.clients {
		up.Close()
	}
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// A node b whose links and gossip are reached only through port forwards
// (another port than the one it listens on, as behind NAT) announces the
// forwarded addresses (LinkAdvertiseAddr, AdvertiseAddr): a joins b's
// gossip at its announced address, and c, which learns of b from a's
// gossip only, links to b through the forward of its link port. Before,
// nothing set the announced link address: members dialled b's local port.
// A member m announcing b's forwarded link address as its own gets no
// link there: the handshake proves b's certificate, not m's, and c keeps
// its link to b.
func TestAdvertisedAddressesReachANodeBehindAPortForward(t *testing.T) {
	key := make([]byte, 32)
	gossipFwd, linkFwd := newPortForward(t, true), newPortForward(t, false)
	bLinks := listenUDP(t)
	t.Cleanup(func() { bLinks.Close() })
	linkFwd.setTo(bLinks.LocalAddr())
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.PacketConn = bLinks
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, Interval: time.Second, JoinInterval: 2 * time.Second,
			AdvertiseAddr: gossipFwd.addr(), LinkAdvertiseAddr: linkFwd.addr(),
			LinkPolicy: func(Member) bool { return false }} // b dials no one
	}
	b := c.add("b")
	gossipFwd.setTo(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: b.disco.guard.inner.(*memberlist.NetTransport).GetAutoBindPort()})
	if got := b.Status().GossipAddr; got != gossipFwd.addr() {
		t.Fatalf("b announces gossip address %s, want the forwarded %s", got, gossipFwd.addr())
	}
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, Interval: time.Second, JoinInterval: 2 * time.Second,
			Join: []string{gossipFwd.addr()}}
	}
	a := c.add("a")
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, Interval: time.Second, JoinInterval: 2 * time.Second,
			Join: []string{a.Status().GossipAddr}}
	}
	cn := c.add("c")
	linkedVia := func(n *Node, peer, addr string) bool {
		for _, l := range n.Links() {
			if l.Peer == peer && l.Outbound && l.Address == addr {
				return true
			}
		}
		return false
	}
	waitFor(t, "c linking to b at its forwarded link address", patience, func() bool {
		return linkAddrOf(cn, "b") == linkFwd.addr() && linkedVia(cn, "b", linkFwd.addr())
	})
	if !linkFwd.sawClient(cn.Addr()) {
		t.Errorf("c's link to b did not go through the forward at %s", linkFwd.addr())
	}

	// m announces b's forwarded link address as its own.
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, Interval: time.Second, JoinInterval: 2 * time.Second,
			Join: []string{a.Status().GossipAddr}, LinkAdvertiseAddr: linkFwd.addr(),
			LinkPolicy: func(Member) bool { return false }}
	}
	c.add("m")
	c.tweak = nil
	waitFor(t, "c dialling m at b's forwarded address and proving b there", patience, func() bool {
		cn.disco.mu.Lock()
		defer cn.disco.mu.Unlock()
		bo := cn.disco.backoff[linkFwd.addr()]
		return bo != nil && bo.claimHolder == "b"
	})
	for _, l := range cn.Links() {
		if l.Peer == "m" {
			t.Errorf("c holds a link to m at %s, b's forwarded address", l.Address)
		}
	}
	if !linkedVia(cn, "b", linkFwd.addr()) {
		t.Errorf("c lost its link to b at %s after m claimed the address", linkFwd.addr())
	}
}

// ParseAdvertiseAddr refuses, with an error matching ErrAdvertiseAddr and
// ErrInvalidConfig, every address that reaches no node from elsewhere or
// that memberlist or the members would refuse; New refuses such a
// Discovery.AdvertiseAddr or LinkAdvertiseAddr.
func TestAdvertiseAddrChecked(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7:4242":       "203.0.113.7:4242",
		"[::ffff:10.0.0.1]:4242": "10.0.0.1:4242",
		"[2001:db8::1]:4242":     "[2001:db8::1]:4242",
		"127.0.0.2:1":            "127.0.0.2:1",
	} {
		ap, err := ParseAdvertiseAddr(in)
		if err != nil || ap.String() != want {
			t.Errorf("ParseAdvertiseAddr(%q) = %v, %v; want %s", in, ap, err, want)
		}
	}
	for _, in := range []string{"", "203.0.113.7", "example.com:4242", "0.0.0.0:4242", "[::]:4242", ":4242",
		"203.0.113.7:0", "203.0.113.7:65536", "203.0.113.7:http", "224.0.0.1:4242", "255.255.255.255:4242", "[fe80::1%eth0]:4242"} {
		_, err := ParseAdvertiseAddr(in)
		var ae *AdvertiseAddrError
		if !errors.As(err, &ae) || !errors.Is(err, ErrAdvertiseAddr) || !errors.Is(err, ErrInvalidConfig) || ae.Addr != in {
			t.Errorf("ParseAdvertiseAddr(%q): %v; want an *AdvertiseAddrError naming it", in, err)
		}
		for _, set := range []func(*DiscoveryConfig){
			func(d *DiscoveryConfig) { d.AdvertiseAddr = in },
			func(d *DiscoveryConfig) { d.LinkAdvertiseAddr = in },
		} {
			cfg := Config{Name: "a", Insecure: true, GracePeriod: -1, Discovery: DiscoveryConfig{BindAddr: "127.0.0.1:0"}}
			set(&cfg.Discovery)
			if in == "" {
				continue
			}
			n, err := New(cfg)
			if err == nil {
				n.Close()
			}
			if !errors.Is(err, ErrAdvertiseAddr) {
				t.Errorf("New with %+v: %v; want ErrAdvertiseAddr", cfg.Discovery, err)
			}
		}
	}
}
