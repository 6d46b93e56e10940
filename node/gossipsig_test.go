package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// sendToAll sends packet to the gossip port of every node.
func sendToAll(t *testing.T, conn *net.UDPConn, packet []byte, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		to, err := net.ResolveUDPAddr("udp", n.Status().GossipAddr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDP(packet, to); err != nil {
			t.Fatal(err)
		}
	}
}

func forgerConn(t *testing.T) *net.UDPConn {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// linkAddrOf is the link address n's gossip lists for member, "" when
// none.
func linkAddrOf(n *Node, member string) string {
	for _, m := range n.Members() {
		if m.Name == member {
			return m.LinkAddr
		}
	}
	return ""
}

// joinLate adds a node called name to the nodes of forgeMesh, joining
// through seed.
func joinLate(c *cluster, key []byte, seed *Node, name string) *Node {
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, TargetLinks: 2, MaxLinks: 4,
			Interval: 500 * time.Millisecond, Join: []string{seed.Status().GossipAddr}}
	}
	defer func() { c.tweak = nil }()
	return c.add(name)
}

// waitVerified waits until every node lists every other and holds its
// signed metadata verified (routing carried their certificates).
func waitVerified(t *testing.T, nodes []*Node) {
	t.Helper()
	waitFor(t, "every node to hold every other's verified metadata", time.Minute, func() bool {
		for _, n := range nodes {
			d := n.disco
			d.mu.Lock()
			k := 0
			for _, o := range nodes {
				if gm, ok := d.members[o.cfg.Name]; ok && gm.verified && gm.ok {
					k++
				}
			}
			d.mu.Unlock()
			if k != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// Metadata naming another link address for a member, at the largest
// incarnation (which the member, whose counter wraps, can never outbid),
// unsigned or signed by another certificate of the mesh, is refused by
// every node that knows the member's certificate: nodes keep dialling the
// member's real address, and a node that joins later learns it. Before,
// the forgery replaced the member's entry at every node for good (the
// late joiner got it by push-pull too). Checked against the code before
// signed metadata: both other nodes and the late joiner listed b at the
// forged address.
func TestForgedMetadataCannotReplaceAMember(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, key, "a", "b", "c")
	waitVerified(t, nodes)
	b := nodes[1]
	real := b.disco.linkAddr()
	const forged = "127.0.0.1:9"
	unsigned, _ := json.Marshal(memberMeta{Link: forged, Mesh: "test", TS: math.MaxUint64})
	other, err := c.ca.Issue("mallory", 0)
	if err != nil {
		t.Fatal(err)
	}
	signed := signMeta(other.Key, "test", "b", unsigned)
	conn := forgerConn(t)
	for _, meta := range [][]byte{unsigned, signed} {
		sendToAll(t, conn, forgedAlive(t, "b", b.Status().GossipAddr, math.MaxUint32, meta, key), nodes...)
	}
	time.Sleep(2 * time.Second)
	for _, n := range nodes {
		if n != b {
			if got := linkAddrOf(n, "b"); got != real {
				t.Errorf("after the forgeries %s lists b at %q, want its real address %s", n.cfg.Name, got, real)
			}
		}
	}
	late := joinLate(c, key, nodes[0], "late")
	waitFor(t, "the late joiner to list b", time.Minute, func() bool { return linkAddrOf(late, "b") != "" })
	if got := linkAddrOf(late, "b"); got != real {
		t.Errorf("a node that joined after the forgeries lists b at %q, want its real address %s", got, real)
	}
}

// An alive message with empty metadata about a name that is not a member
// yet, at the largest incarnation, is refused: before, memberlist took it,
// and the node of that name, joining afterwards at a lower incarnation,
// was never listed with an address (its refutation cannot outbid the
// forgery). Checked against the code before: "e" stayed without an
// address at every node for the 30 s watched.
func TestForgedEmptyAliveCannotBlockANewMember(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, key, "a", "b")
	waitFor(t, "a and b to know each other", time.Minute, func() bool {
		return len(nodes[0].Members()) == 2 && len(nodes[1].Members()) == 2
	})
	conn := forgerConn(t)
	// Any gossip address: memberlist keys members by name.
	sendToAll(t, conn, forgedAlive(t, "e", "127.0.0.1:9", math.MaxUint32, nil, key), nodes...)
	time.Sleep(time.Second)
	e := joinLate(c, key, nodes[0], "e")
	real := e.disco.linkAddr()
	ok := true
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for linkAddrOf(n, "e") != real && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if got := linkAddrOf(n, "e"); got != real {
			ok = false
			t.Errorf("%s lists e at %q, want %s", n.cfg.Name, got, real)
		}
	}
	if ok {
		t.Logf("every node lists e at %s", real)
	}
}

// NotifyAlive's decisions on signed metadata of a member whose
// certificate the node knows: the member's own newer metadata passes
// (with another address), its older one (a replay) does not, nor
// metadata signed by another certificate, nor unsigned metadata; a member
// whose certificate is not known is taken unverified.
func TestSignedMetadataChecks(t *testing.T) {
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, bytes.Repeat([]byte{7}, 32), "a", "b")
	waitVerified(t, nodes)
	a, b := nodes[0], nodes[1]
	bid := b.identity()
	mk := func(link string, ts uint64) []byte {
		body, _ := json.Marshal(memberMeta{Link: link, Mesh: "test", TS: ts})
		return body
	}
	a.disco.mu.Lock()
	held := a.disco.verified["b"].ts
	a.disco.mu.Unlock()
	other, err := c.ca.Issue("mallory", 0)
	if err != nil {
		t.Fatal(err)
	}
	newer := signMeta(bid.Key, "test", "b", mk("127.0.0.1:9", held+1))
	for _, tc := range []struct {
		name, member string
		meta         []byte
		want         error
	}{
		{"newer, signed by the member", "b", newer, nil},
		{"the same again", "b", newer, nil},
		{"older, signed by the member (a replay)", "b", signMeta(bid.Key, "test", "b", mk("127.0.0.1:10", held)), errMetaStale},
		{"signed by another certificate", "b", signMeta(other.Key, "test", "b", mk("127.0.0.1:11", held+5)), errMetaSignature},
		{"signed for another name", "b", signMeta(bid.Key, "test", "a", mk("127.0.0.1:12", held+6)), errMetaSignature},
		{"unsigned", "b", mk("127.0.0.1:13", held+7), errMetaUnverified},
		{"signature cut off", "b", newer[:len(newer)-3], errBadMeta},
		{"unsigned, certificate not known", "newcomer", mk("127.0.0.1:14", 1), nil},
		{"empty, for a member not known yet", "newcomer", nil, errBadMeta},
	} {
		err := a.disco.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: tc.member, Meta: tc.meta})
		if (err == nil) != (tc.want == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: NotifyAlive = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := linkAddrOf(a, "b"); got != "127.0.0.1:9" {
		t.Errorf("after b's newer signed metadata a lists b at %q, want 127.0.0.1:9", got)
	}
	// A node that predates signing reads signed metadata as before, and
	// its own unsigned metadata is taken when none of it was verified.
	var old struct {
		Link string `json:"link"`
		Mesh string `json:"mesh"`
	}
	if err := json.Unmarshal(newer, &old); err != nil || old.Link != "127.0.0.1:9" || old.Mesh != "test" {
		t.Errorf("signed metadata read without its new fields: %+v, %v", old, err)
	}
	a.disco.mu.Lock()
	delete(a.disco.verified, "b") // as for a node that never signed
	a.disco.mu.Unlock()
	if err := a.disco.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: "b", Meta: mk("127.0.0.1:15", 0)}); err != nil {
		t.Errorf("unsigned metadata of a member never verified: NotifyAlive = %v, want taken", err)
	}
}

// A forged dead message about a member at the largest incarnation,
// resent every 2 s to every node but the member (a node that joins later
// included),
// does not hide the member: nodes keep it while routing reaches it, and a
// node that joins meanwhile learns it (from the member's own gossip) and
// keeps it too.
// Before, every node dropped b from its members at the first forgery, and
// the late joiner never listed it. Checked against the code before
// signed metadata: a stopped listing b within the first 5 s watched.
func TestForgedDeadCannotHideAMember(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, key, "a", "b", "c")
	waitVerified(t, nodes)
	b := nodes[1]
	real := b.disco.linkAddr()
	conn := forgerConn(t)
	// Not to b, which would refute each (an alive message that carries
	// its metadata to whoever does not know it yet).
	targets := []*Node{nodes[0], nodes[2]}
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			mu.Lock()
			to := append([]*Node(nil), targets...)
			mu.Unlock()
			for _, n := range to {
				if a, err := net.ResolveUDPAddr("udp", n.Status().GossipAddr); err == nil {
					conn.WriteToUDP(forgedDead(t, "b", math.MaxUint32, key), a)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	defer func() { close(stop); <-done }()
	watch := func(what string, ns []*Node, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			for _, n := range ns {
				if n == b {
					continue
				}
				if got := linkAddrOf(n, "b"); got != real {
					t.Fatalf("%s: %s lists b at %q, want %s", what, n.cfg.Name, got, real)
				}
			}
		}
	}
	watch("under forged dead messages", nodes, 5*time.Second)
	late := joinLate(c, key, nodes[0], "late")
	joined := time.Now()
	mu.Lock()
	targets = append(targets, late)
	mu.Unlock()
	waitFor(t, "the late joiner to list b under forged dead messages", time.Minute, func() bool { return linkAddrOf(late, "b") == real })
	t.Logf("the late joiner listed b %v after it started", time.Since(joined).Round(100*time.Millisecond))
	watch("late joiner, under forged dead messages", append(nodes, late), 5*time.Second)
}

// When the routing certificate records forget a member (they are bounded
// and cleared when full), its newer signed metadata is still checked,
// with the certificate its held metadata verified under: it was refused
// as unverifiable until the member's next seqno, its address and
// coordinate frozen meanwhile.
func TestSignedMetadataCheckedAfterCertificateRecordsForget(t *testing.T) {
	c := newCluster(t, true)
	nodes := forgeMesh(t, c, bytes.Repeat([]byte{7}, 32), "a", "b")
	waitVerified(t, nodes)
	a, b := nodes[0], nodes[1]
	a.disco.mu.Lock()
	held := a.disco.verified["b"].ts
	a.disco.mu.Unlock()
	cert := a.router.cert
	cert.mu.Lock()
	clear(cert.certOf)
	cert.mu.Unlock()
	body, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: held + 1})
	if err := a.disco.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: "b", Meta: signMeta(b.identity().Key, "test", "b", body)}); err != nil {
		t.Fatalf("b's newer signed metadata after a's certificate records forgot b: %v", err)
	}
	forged, _ := json.Marshal(memberMeta{Link: "127.0.0.1:10", Mesh: "test", TS: held + 2})
	if err := a.disco.NotifyAlive(&memberlist.Node{Addr: loopback4, Name: "b", Meta: forged}); !errors.Is(err, errMetaUnverified) {
		t.Fatalf("unsigned metadata of b then: %v, want %v", err, errMetaUnverified)
	}
}

// TestMetaGossipAddr: the gossip address signed metadata names must be
// the one the alive message carries, IPv4 in either of memberlist's forms
// (4 bytes, or 16 as IPv4-mapped IPv6); metadata naming none (a node of a
// version before the field) passes, but its address never counts as a
// verified member's (verifiedAt).
func TestMetaGossipAddr(t *testing.T) {
	v4 := net.IPv4(10, 0, 0, 1) // 16 bytes: IPv4-mapped
	for _, tt := range []struct {
		named string
		ip    net.IP
		port  uint16
		ok    bool
	}{
		{"", v4, 7946, true},
		{"10.0.0.1:7946", v4, 7946, true},
		{"10.0.0.1:7946", v4.To4(), 7946, true},
		{"[::ffff:10.0.0.1]:7946", v4.To4(), 7946, true},
		{"[2001:db8::1]:7946", net.ParseIP("2001:db8::1"), 7946, true},
		{"10.0.0.1:7946", v4, 7947, false},
		{"10.0.0.2:7946", v4, 7946, false},
		{"10.0.0.1:7946", net.ParseIP("2001:db8::1"), 7946, false},
		{"[fe80::1%eth0]:7946", net.ParseIP("fe80::1"), 7946, false},
		{"10.0.0.1", v4, 7946, false},
		{"example.org:7946", v4, 7946, false},
	} {
		m := memberMeta{Gossip: tt.named}
		err := m.checkGossip(tt.ip, tt.port)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, errBadMeta)) {
			t.Errorf("metadata naming %q, alive message at %s:%d: %v", tt.named, tt.ip, tt.port, err)
		}
	}
	a := netip.MustParseAddrPort("10.0.0.1:7946")
	d := &discovery{verified: map[string]verifiedMeta{"new": {gossip: a}, "old": {}}}
	if !d.verifiedAt("new", a) || d.verifiedAt("new", netip.MustParseAddrPort("10.0.0.1:7947")) || d.verifiedAt("old", a) || d.verifiedAt("none", a) {
		t.Error("verifiedAt counts an address its verified metadata does not name")
	}
}
