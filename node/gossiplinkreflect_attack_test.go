package node

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// handshakeSink listens on ports of one IP and counts the QUIC connection
// attempts it receives (distinct source and destination connection ID of
// long-header packets), by source address.
type handshakeSink struct {
	mu       sync.Mutex
	bytes    int
	attempts map[string]map[string]bool // source → DCIDs
	conns    []*net.UDPConn
}

func newHandshakeSink(t *testing.T, ip string, ports int) *handshakeSink {
	t.Helper()
	s := &handshakeSink{attempts: map[string]map[string]bool{}}
	for range ports {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Skipf("no address %s to listen on: %v", ip, err)
		}
		s.conns = append(s.conns, pc)
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				p := buf[:n]
				s.mu.Lock()
				s.bytes += n
				if len(p) >= 6 && p[0]&0x80 != 0 && len(p) >= 6+int(p[5]) {
					src := from.String()
					if s.attempts[src] == nil {
						s.attempts[src] = map[string]bool{}
					}
					s.attempts[src][string(p[6:6+int(p[5])])] = true
				}
				s.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() {
		for _, pc := range s.conns {
			pc.Close()
		}
	})
	return s
}

// counts returns the bytes received, the connection attempts in all and
// the most from one source.
func (s *handshakeSink) counts() (bytes, attempts, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ids := range s.attempts {
		attempts += len(ids)
		most = max(most, len(ids))
	}
	return s.bytes, attempts, most
}

// TestAttackGossipMembersReflectHandshakesAtOneHost: a stranger with no
// certificate, in a mesh whose gossip is not encrypted (the default),
// pushes each node one push-pull listing made-up members whose link
// addresses are a victim host's: many of its ports, and one port spelled many ways
// (leading zeros, IPv4-mapped IPv6), each of which net.ResolveUDPAddr
// takes. Before, every node dialled every one of them, with back-offs per
// address spelling and per made-up name: 3 nodes sent the victim 1,162
// QUIC handshakes in a minute for one push-pull of 6.7 KB, and more for
// every made-up member. Spellings other than the canonical IP:port must
// be refused, and the victim get at most unprovenDials handshakes from
// each node, whatever the number of members and ports.
func TestAttackGossipMembersReflectHandshakesAtOneHost(t *testing.T) {
	const ports, spellings = 12, 12
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.DialTimeout = 2 * time.Second // a silent address fails in 2 s, not 10
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Interval: 250 * time.Millisecond, JoinInterval: time.Second}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	a := c.add("a")
	seed = a.Status().GossipAddr
	b := c.add("b")
	cc := c.add("c")
	nodes := []*Node{a, b, cc}
	waitFor(t, "a mesh of three", time.Minute, func() bool {
		pa, ok1 := a.Peer("c")
		pc, ok2 := cc.Peer("b")
		return ok1 && ok2 && pa.Reachable && pc.Reachable
	})
	victim := newHandshakeSink(t, "127.0.0.2", ports)

	var links, refused []string
	for _, pc := range victim.conns {
		links = append(links, pc.LocalAddr().String())
	}
	port := victim.conns[0].LocalAddr().(*net.UDPAddr).Port
	for i := 1; i < spellings; i++ {
		refused = append(refused, "127.0.0.2:"+strings.Repeat("0", i)+strconv.Itoa(port))
	}
	refused = append(refused, "[::ffff:127.0.0.2]:"+strconv.Itoa(port))
	all := append(append([]string(nil), links...), refused...)
	var sent int64
	for _, n := range nodes { // one push-pull to each node
		conn, err := net.DialTimeout("tcp", n.Status().GossipAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cw := &countWriter{w: conn}
		w := bufio.NewWriter(cw)
		_, _ = w.Write(pushPullHeader(t, len(all), 0))
		enc := codec.NewEncoder(w, &codec.MsgpackHandle{})
		for i, link := range all {
			meta, _ := json.Marshal(memberMeta{Link: link, Mesh: "test"})
			// The gossip address: a silent port elsewhere, so that
			// memberlist's own probes do not reach the victim.
			if err := enc.Encode(pushNodeState{Name: fmt.Sprintf("ghost-%03d", i), Addr: []byte{127, 0, 0, 3}, Port: 9,
				Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.Flush()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
		conn.Close()
		sent += cw.n
	}
	listed := func(n *Node) map[string]bool {
		m := map[string]bool{}
		for _, mem := range n.Members() {
			if strings.HasPrefix(mem.Name, "ghost-") {
				m[mem.LinkAddr] = true
			}
		}
		return m
	}
	for _, n := range nodes {
		waitFor(t, "the made-up members at "+n.Name(), 10*time.Second, func() bool { return len(listed(n)) > 0 })
	}
	for _, n := range nodes {
		for link := range listed(n) {
			for _, r := range refused {
				if link == r {
					t.Errorf("%s lists a member at %q", n.Name(), link)
				}
			}
		}
		if v := metricValue(t, n, "circuitmesh_gossip_refused_total", "reason", refuseLink); v < 1 {
			t.Errorf("%s counted %v alive messages refused for their link address, want the made-up members at other spellings counted", n.Name(), v)
		}
	}

	// Every node dials some made-up member, each dial failing after
	// DialTimeout; then watch what more comes for several times that.
	waitFor(t, "a handshake at the victim", 30*time.Second, func() bool {
		_, n, _ := victim.counts()
		return n > 0
	})
	time.Sleep(8 * time.Second)
	by, att, most := victim.counts()
	t.Logf("a stranger sent each of %d nodes one push-pull (%d bytes in all) of %d made-up members (%d ports of the victim, %d other spellings of one): the victim got %d bytes, %d QUIC handshakes, at most %d from one node",
		len(nodes), sent, len(all), ports, len(refused), by, att, most)
	if most > unprovenDials || att > len(nodes)*unprovenDials {
		t.Errorf("the victim got %d handshakes, %d from one node: want at most %d per node", att, most, unprovenDials)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
