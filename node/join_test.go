package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/coordinate"
	"github.com/miekg/dns"
)

// dnsServer is a small authoritative DNS server on loopback whose records
// a test changes while it runs. Like a real one it truncates UDP answers
// to the size the client offers and answers on TCP too, where the client
// asks again for a truncated answer (a large SRV set).
type dnsServer struct {
	addr  string
	mu    sync.Mutex
	a     map[string][]net.IP   // name → A records
	srv   map[string][]*dns.SRV // name → SRV records
	srvr  []*dns.Server
	asked atomic.Int64 // questions answered
}

func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	// The server answers on one port over UDP and TCP. The port is free
	// for UDP when chosen, but another process may hold it for TCP:
	// choose again then.
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("no port free for both UDP and TCP: %v", err)
	}
	s := &dnsServer{addr: pc.LocalAddr().String(), a: map[string][]net.IP{}, srv: map[string][]*dns.SRV{}}
	for _, srv := range []*dns.Server{{PacketConn: pc}, {Listener: ln}} {
		started, done := make(chan struct{}), make(chan struct{})
		srv.Handler = dns.HandlerFunc(s.answer)
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			defer close(done)
			srv.ActivateAndServe()
		}()
		<-started
		s.srvr = append(s.srvr, srv)
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return s
}

func (s *dnsServer) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	s.asked.Add(int64(len(q.Question)))
	s.mu.Lock()
	for _, qq := range q.Question {
		switch qq.Qtype {
		case dns.TypeA:
			for _, ip := range s.a[qq.Name] {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: ip})
			}
		case dns.TypeSRV:
			for _, r := range s.srv[qq.Name] {
				rr := *r
				rr.Hdr = dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 1}
				m.Answer = append(m.Answer, &rr)
			}
		}
	}
	if len(m.Answer) == 0 && len(s.a[q.Question[0].Name]) == 0 && len(s.srv[q.Question[0].Name]) == 0 {
		m.Rcode = dns.RcodeNameError
	}
	s.mu.Unlock()
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := q.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.addr)
	}}
}

func TestJoinByDNSAndSRV(t *testing.T) {
	ds := newDNSServer(t)
	c := newCluster(t, false)
	key := bytes.Repeat([]byte{3}, 32)
	var join []string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, Join: join,
			Resolver: ds.resolver(), JoinInterval: 100 * time.Millisecond}
	}
	seed := c.add("seed")
	_, port, _ := net.SplitHostPort(seed.Status().GossipAddr)
	p, _ := strconv.Atoi(port)

	ds.mu.Lock()
	ds.a["seed.mesh.test."] = []net.IP{net.IPv4(127, 0, 0, 1)}
	ds.srv["_gossip._udp.mesh.test."] = []*dns.SRV{{Target: "seed.mesh.test.", Port: uint16(p)}}
	ds.mu.Unlock()

	join = []string{"dns+srv:_gossip._udp.mesh.test"}
	c.add("bysrv")
	join = []string{"dns:seed.mesh.test:" + port}
	c.add("bya")
	// A name that resolves to nothing yet: joined once it does.
	join = []string{"dns:later.mesh.test:" + port}
	c.add("later")
	ds.mu.Lock()
	ds.a["later.mesh.test."] = []net.IP{net.IPv4(127, 0, 0, 1)}
	ds.mu.Unlock()

	deadline := time.Now().Add(30 * time.Second)
	for len(seed.Members()) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("seed knows %+v, want 4 members", seed.Members())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.waitConverged()
}

// A headless Service of many pods: the SRV answer does not fit in UDP
// (it comes over TCP), and resolving stops at maxJoinAddrs addresses
// rather than asking for every pod's address.
func TestResolveJoinOfManyPodsIsBounded(t *testing.T) {
	const pods = maxJoinAddrs + 100
	ds := newDNSServer(t)
	ds.mu.Lock()
	for i := range pods {
		host := fmt.Sprintf("circuitmesh-%d.circuitmesh.ns.svc.", i)
		ds.a[host] = []net.IP{net.IPv4(127, 0, byte(i>>8), byte(i))}
		ds.srv["_gossip._udp.circuitmesh.ns.svc."] = append(ds.srv["_gossip._udp.circuitmesh.ns.svc."], &dns.SRV{Target: host, Port: 7946})
	}
	ds.mu.Unlock()
	got, err := resolveJoin(ctxT(t, 30*time.Second), ds.resolver(), []string{"dns+srv:_gossip._udp.circuitmesh.ns.svc"}, "1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxJoinAddrs {
		t.Fatalf("resolved %d addresses of %d pods, want %d", len(got), pods, maxJoinAddrs)
	}
	// A and AAAA per pod resolved, the SRV question over UDP and TCP.
	if asked := ds.asked.Load(); asked > 2*maxJoinAddrs+4 {
		t.Fatalf("%d questions asked of the DNS server for %d addresses", asked, maxJoinAddrs)
	}
}

func TestResolveJoinErrors(t *testing.T) {
	ds := newDNSServer(t)
	ds.mu.Lock()
	ds.a["x.test."] = []net.IP{net.IPv4(127, 0, 0, 2)}
	ds.mu.Unlock()
	ctx := ctxT(t, 10*time.Second)
	got, err := resolveJoin(ctx, ds.resolver(), []string{"10.0.0.1:7946", "dns:x.test", "dns:nowhere.test", "dns:"}, "7000")
	if !errors.Is(err, ErrBadJoin) {
		t.Fatalf("error %v, want ErrBadJoin", err)
	}
	if len(got) != 2 || got[0] != "10.0.0.1:7946" || got[1] != "127.0.0.2:7000" {
		t.Fatalf("resolved %v", got)
	}
}

// A gossip member (it has the gossip key) that announces another node's
// link address does not get a link: the handshake proves another name, the
// link is closed and the address is not dialled again for a long time.
func TestMemberWhoseCertificateNamesAnotherNodeGetsNoLink(t *testing.T) {
	key := bytes.Repeat([]byte{5}, 32)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key}
	}
	a := c.add("a")
	c.tweak = nil
	victim := c.add("victim") // no gossip: only the liar announces it
	ups, cancel, err := victim.Subscribe(64)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()

	// The liar: a real memberlist member claiming victim's link address.
	fakeMember(t, "liar", key, victim.Addr().String(), a.Status().GossipAddr)
	// a dials the announced address, finds "victim", drops the link and
	// backs the address off for long.
	addr := victim.Addr().String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.disco.mu.Lock()
		b := a.disco.backoff[addr]
		banned := b != nil && time.Until(b.until) > banTime/2
		a.disco.mu.Unlock()
		if banned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lying member's address is not backed off for long: %+v", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for a.link("victim") != nil {
		if time.Now().After(deadline) {
			t.Fatal("a keeps a link to a member that proved another name")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The victim saw at most the one link of that handshake.
	n := 0
	for {
		select {
		case ev := <-ups:
			if ev.Kind == LinkUp {
				n++
			}
			continue
		default:
		}
		break
	}
	if n > 1 {
		t.Fatalf("a linked to the victim %d times", n)
	}
}

// fakeMember joins a real memberlist member to the gossip at seed: it has
// the gossip key and announces linkAddr as its link address, but runs no
// node and holds no certificate. It leaves when the test ends.
func fakeMember(t *testing.T, name string, key []byte, linkAddr, seed string) {
	t.Helper()
	meta, _ := json.Marshal(memberMeta{Link: linkAddr, Mesh: "test"})
	fakeMemberMeta(t, name, key, meta, seed)
}

// fakeMemberMeta is fakeMember with the gossip metadata given as is.
func fakeMemberMeta(t *testing.T, name string, key, meta []byte, seed string) {
	t.Helper()
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = name, "127.0.0.1", 0
	mc.SecretKey = key
	mc.LogOutput = io.Discard // memberlist may log after Shutdown, past the test
	mc.Delegate = staticMeta(meta)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	// The join is tried again until it succeeds, for at most patience:
	// the seed's gossip guard refuses a stream whose first bytes take
	// more than gossipFirstBytes, which a loaded machine can take between
	// the fake's connect and its write (any attacker tries again).
	deadline := time.Now().Add(patience)
	for {
		_, err := ml.Join([]string{seed})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s joining %s: %v", name, seed, err)
		}
		t.Logf("%s joining %s: %v; trying again", name, seed, err)
		time.Sleep(100 * time.Millisecond)
	}
}

type staticMeta []byte

func (m staticMeta) NodeMeta(int) []byte           { return m }
func (staticMeta) NotifyMsg([]byte)                {}
func (staticMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (staticMeta) LocalState(bool) []byte          { return nil }
func (staticMeta) MergeRemoteState([]byte, bool)   {}

func FuzzDecodeCoordinate(f *testing.F) {
	good, _ := json.Marshal(coordinate.NewCoordinate(coordinate.DefaultConfig()))
	f.Add(good)
	f.Add([]byte(`{"Vec":[1,2],"Error":1,"Adjustment":0,"Height":0}`))
	f.Add([]byte(`{"Vec":[1e308,1e308,1e308,1e308,1e308,1e308,1e308,1e308],"Error":1e308}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCoordinate(b)
		if err != nil {
			if !errors.Is(err, errBadCoordinate) {
				t.Fatalf("error %v does not unwrap to errBadCoordinate", err)
			}
			return
		}
		if !c.IsValid() {
			t.Fatalf("accepted an invalid coordinate %+v", c)
		}
		// A decoded coordinate is usable for distance estimates.
		_ = coordinate.NewCoordinate(coordinate.DefaultConfig()).DistanceTo(c)
	})
}

// Gossip members that have the gossip key but no certificate (their link
// addresses lead nowhere) take no link slot: a late honest joiner still
// links and reaches every honest node, and the fakes' addresses are backed
// off.
func TestFakeGossipMembersTakeNoLinkSlots(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	c := newCluster(t, false)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, TargetLinks: 2, MaxLinks: 4}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	a := c.add("a")
	seed = a.Status().GossipAddr
	c.add("b")
	for i := range 8 {
		fakeMember(t, "fake"+strconv.Itoa(i), key, "nowhere"+strconv.Itoa(i), seed)
	}
	late := c.add("late")
	c.waitConverged()
	if len(late.Links()) == 0 {
		t.Fatal("the late joiner has no links")
	}
	// Every fake address a tried is backing off.
	deadline := time.Now().Add(30 * time.Second)
	for {
		a.disco.mu.Lock()
		n := 0
		for addr, b := range a.disco.backoff {
			if len(addr) > 7 && addr[:7] == "nowhere" && time.Now().Before(b.until) {
				n++
			}
		}
		a.disco.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never backed off from a fake member's address")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A StatefulSet behind a headless Service: every pod joins the Service's
// SRV name, which lists every pod started so far, itself included (the
// first pod finds only itself). Pods join in name order, and the mesh
// they build by themselves connects every pair within the degree bound.
func TestStatefulSetJoinsBySRV(t *testing.T) {
	n := 8
	if !testing.Short() {
		n = 20
	}
	const srvName, maxLinks = "_gossip-udp._udp.circuitmesh.ns.svc.", 6
	ds := newDNSServer(t)
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: make([]byte, 32), Join: []string{"dns+srv:" + srvName},
			Resolver: ds.resolver(), JoinInterval: 200 * time.Millisecond, Interval: time.Second, TargetLinks: 4, MaxLinks: maxLinks}
	}
	var names []string
	for i := range n {
		name := fmt.Sprintf("circuitmesh-%d", i)
		host := name + ".circuitmesh.ns.svc."
		// The pod's record exists before the process starts
		// (publishNotReadyAddresses), but its gossip port is known only
		// once it listens: register the host now, the SRV record after.
		ds.mu.Lock()
		ds.a[host] = []net.IP{net.IPv4(127, 0, 0, 1)}
		ds.mu.Unlock()
		nd := c.add(name)
		_, port, _ := net.SplitHostPort(nd.Status().GossipAddr)
		p, _ := strconv.Atoi(port)
		ds.mu.Lock()
		ds.srv[srvName] = append(ds.srv[srvName], &dns.SRV{Target: host, Port: uint16(p)})
		ds.mu.Unlock()
		names = append(names, name)
	}
	took, st := waitMesh(t, c, names, maxLinks, 60*time.Second)
	t.Logf("%d pods joined by SRV: every pair reachable %v after the last start; max degree %d (bound %d), mean %.1f, diameter %d",
		n, took.Round(time.Millisecond), st.maxDegree, maxLinks, st.meanDegree, st.diameter)
}

// TestAnnouncedAddressLookupBoundedAndUsesResolver: a node whose gossip
// binds every address picks the address it announces by the route to its
// first join address; a join address that is a host name is looked up
// with Discovery.Resolver within the start's bound, so a DNS server that
// never answers holds Start for that bound at most. Before, the name went
// to the system resolver with no deadline.
func TestAnnouncedAddressLookupBoundedAndUsesResolver(t *testing.T) {
	var asked atomic.Int64
	stalled := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		asked.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan net.IP, 1)
	go func() { done <- sourceToward(ctx, stalled, []string{"seed.mesh.test:7946"}) }()
	select {
	case ip := <-done:
		if ip != nil {
			t.Errorf("announced %v for a join name nobody resolved", ip)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lookup of the join name outlived its bound by 30 s")
	}
	if asked.Load() == 0 {
		t.Error("the join name was not looked up with Discovery.Resolver")
	}
}

// TestAnnouncedAddressPrefersIPv4: of join addresses of both families,
// the address announced is chosen by an IPv4 one first, as memberlist
// chooses, so that members reaching only IPv4 are not told an IPv6
// address because a join name listed its AAAA record first.
func TestAnnouncedAddressPrefersIPv4(t *testing.T) {
	// Documentation prefixes: routed by a default route, never sent to
	// (a UDP connect sends nothing).
	v4, v6 := "192.0.2.1:7946", "[2001:db8::1]:7946"
	if sourceToward(context.Background(), net.DefaultResolver, []string{v4}) == nil ||
		sourceToward(context.Background(), net.DefaultResolver, []string{v6}) == nil {
		t.Skip("NOT RUN: this host lacks a route to 192.0.2.1 or to 2001:db8::1 (a default route of each family), so the choice cannot be seen")
	}
	ip := sourceToward(context.Background(), net.DefaultResolver, []string{v6, v4})
	if ip.To4() == nil {
		t.Fatalf("announced %v, chosen by the IPv6 join address before the IPv4 one", ip)
	}
}
