package node

import (
	"bufio"
	"bytes"
	"compress/lzw"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"runtime"
	rmetrics "runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The attacks of these tests come from a stranger: a mesh whose gossip
// runs without a key (the default) takes gossip packets and streams from
// anyone who reaches its gossip port.

// gossipRefused is how many gossip packets and streams n's guard refused.
func gossipRefused(n *Node) int64 {
	if n.disco == nil || n.disco.guard == nil {
		return 0
	}
	return n.disco.guard.Refused()
}

func plainGossipNode(t *testing.T, name string) *Node {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0"} }
	return c.add(name)
}

// lzwOf is data compressed as memberlist compresses (LZW, LSB, 8 bits).
func lzwOf(t testing.TB, data []byte) []byte {
	var z bytes.Buffer
	w := lzw.NewWriter(&z, lzw.LSB, 8)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return z.Bytes()
}

// compressMsg is memberlist's compressMsg (type 9) of payload.
func compressMsg(t testing.TB, payload []byte) []byte {
	var out bytes.Buffer
	out.WriteByte(gmCompress)
	if err := codec.NewEncoder(&out, &codec.MsgpackHandle{}).Encode(struct {
		Algo uint8
		Buf  []byte
	}{gmLZW, lzwOf(t, payload)}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// pushPullHeader is memberlist's push-pull message type and header.
func pushPullHeader(t testing.TB, nodes, userState int) []byte {
	var b bytes.Buffer
	b.WriteByte(gmPushPull)
	if err := codec.NewEncoder(&b, &codec.MsgpackHandle{}).Encode(struct {
		Nodes        int
		UserStateLen int
		Join         bool
	}{nodes, userState, false}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// peakLiveHeap is the largest live heap (liveHeap) sampled four times
// over the next second.
func peakLiveHeap() uint64 {
	var most uint64
	for range 4 {
		time.Sleep(250 * time.Millisecond)
		most = max(most, liveHeap())
	}
	return most
}

// liveHeap is the heap's live objects after a GC.
func liveHeap() uint64 {
	runtime.GC()
	return heapObjects()
}

func heapObjects() uint64 {
	s := []rmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rmetrics.Read(s)
	return s[0].Value.Uint64()
}

// peakHeap samples the heap while f runs and returns the largest seen.
func peakHeap(f func()) uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if v := heapObjects(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// TestGossipPushPullHeaderBounded: a stranger opens TCP connections to
// d's gossip port and writes a push-pull header announcing 1,048,576
// node states (33 bytes), plain or compressed, then nothing. memberlist
// allocates the states the header announces (~112 bytes each) as soon as
// it reads it and holds them until its TCP timeout (10 s). The guard
// refuses a header beyond the member bound: d's live heap must not grow
// by 64 MiB (without the guard three connections hold ~330 MiB).
func TestGossipPushPullHeaderBounded(t *testing.T) {
	d := plainGossipNode(t, "d")
	addr := d.Status().GossipAddr
	hdr := pushPullHeader(t, 1<<20, 0)
	msgs := [][]byte{hdr, hdr, compressMsg(t, hdr), pushPullHeader(t, 0, 20<<20)}
	base := liveHeap()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for _, m := range msgs {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	most := peakLiveHeap()
	grew := int64(most) - int64(base)
	t.Logf("%d silent connections: d's live heap %d MiB, at most %d MiB while they wait (+%d MiB); refused %d",
		len(msgs), base>>20, most>>20, grew>>20, gossipRefused(d))
	if grew > 64<<20 {
		t.Errorf("%d silent gossip connections of %d bytes each made d hold %d MiB", len(msgs), len(hdr), grew>>20)
	}
	if n := gossipRefused(d); n != int64(len(msgs)) {
		t.Errorf("d refused %d of %d push-pull headers beyond its bounds", n, len(msgs))
	}
}

// gossipBomb is a compressMsg of about 31 KB expanding to 39 MiB of
// zeros, just under memberlist's own limit of 40 MiB.
func gossipBomb(t testing.TB, mib int) []byte {
	return compressMsg(t, make([]byte, mib<<20))
}

// TestGossipStreamDecompressionBombBounded: a stranger writes a ~31 KB
// compressed message expanding to 39 MiB on each of 8 gossip
// connections at once. memberlist decompresses each whole before it
// reads its type; the guard decompresses it as memberlist reads it, so
// d's heap must not peak 64 MiB higher (without the guard: ~+300 MiB).
func TestGossipStreamDecompressionBombBounded(t *testing.T) {
	d := plainGossipNode(t, "d")
	addr := d.Status().GossipAddr
	bomb := gossipBomb(t, 39)
	base := liveHeap()
	const conns = 8
	peak := peakHeap(func() {
		var wg sync.WaitGroup
		for range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				_, _ = c.Write(bomb)
				// d answers an error or closes once it is done.
				_, _ = io.Copy(io.Discard, c)
			}()
		}
		wg.Wait()
	})
	grew := int64(peak) - int64(base)
	t.Logf("%d connections of %d bytes: d's heap %d MiB, peak %d MiB (+%d MiB)", conns, len(bomb), base>>20, peak>>20, grew>>20)
	if grew > 64<<20 {
		t.Errorf("%d gossip connections of %d bytes each grew d's heap by %d MiB", conns, len(bomb), grew>>20)
	}
}

// TestGossipPacketDecompressionBombRefused: compressed gossip datagrams
// that expand far beyond any honest packet: ~31 KB to 39 MiB, and one
// that fits an honest packet's size (~2 KB) but expands to 1 MiB.
// memberlist decompresses each whole (up to 40 MiB), on its single
// packet goroutine. The guard refuses both, the second after
// decompressing at most gossipPacketMax bytes: d must allocate less than
// 1 MiB per datagram, and count each refusal.
func TestGossipPacketDecompressionBombRefused(t *testing.T) {
	d := plainGossipNode(t, "d")
	addr, err := net.ResolveUDPAddr("udp", d.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	big, small := gossipBomb(t, 39), gossipBomb(t, 1)
	if len(small) > gossipPacketMax {
		t.Fatalf("small bomb of %d bytes", len(small))
	}
	c, err := net.DialUDP("udp", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	const packets = 20
	for i := range packets {
		p := big
		if i%2 == 1 {
			p = small
		}
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Until the allocation stops growing (d's packet reader is done).
	last := uint64(0)
	for range 100 {
		time.Sleep(200 * time.Millisecond)
		runtime.ReadMemStats(&ms1)
		if ms1.TotalAlloc-last < 1<<20 && gossipRefused(d) >= packets {
			break
		}
		last = ms1.TotalAlloc
	}
	alloc := ms1.TotalAlloc - ms0.TotalAlloc
	t.Logf("%d datagrams of %d and %d bytes: d allocated %d MiB; refused %d", packets, len(big), len(small), alloc>>20, gossipRefused(d))
	if alloc/packets > 1<<20 {
		t.Errorf("each compressed gossip datagram from a stranger made d allocate %d MiB", (alloc/packets)>>20)
	}
	if n := gossipRefused(d); n != packets {
		t.Errorf("d refused %d of %d compressed datagrams beyond gossipPacketMax", n, packets)
	}
}

// countHandler counts log records whose message or attributes hold sub.
type countHandler struct {
	sub string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.Value.String(); return true })
	if strings.Contains(s, h.sub) {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestGossipPacketSignatureChecksBounded: one datagram of ~64 KB holding,
// compressed, a compound of compounds of alive messages about b, each
// with metadata signed by another valid certificate. memberlist hands
// each alive message to NotifyAlive, which verifies its signature
// against b's certificate (Ed25519, a failure is not cached): about
// 1,000 verifications for one datagram. The guard refuses the datagram
// (beyond gossipPacketMax, compounds nested), and a flat compound that
// fits an honest packet holds a handful: a must check at most 16
// signatures for the two datagrams.
func TestGossipPacketSignatureChecksBounded(t *testing.T) {
	c := newCluster(t, true)
	var bad atomic.Int64
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", TargetLinks: 2, MaxLinks: 4, Interval: 500 * time.Millisecond}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
			cfg.Logger = slog.New(countHandler{"bad signature", &bad})
		}
	}
	b := c.add("b")
	seed = b.Status().GossipAddr
	a := c.add("a")
	c.tweak = nil
	waitVerified(t, []*Node{a, b})

	mallory, err := c.ca.Issue("mallory", 0)
	if err != nil {
		t.Fatal(err)
	}
	a.disco.mu.Lock()
	held := a.disco.verified["b"].ts
	a.disco.mu.Unlock()
	body, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: held + 1})
	meta := signMeta(mallory.Key, "test", "b", body)
	alive := forgedAlive(t, "b", b.Status().GossipAddr, math.MaxUint32, meta, nil)
	inner := make([][]byte, 16)
	for i := range inner {
		inner[i] = alive
	}
	in := compound(inner)
	var packet []byte
	var messages int
	for n := 255; n > 0; n -= 5 {
		outer := make([][]byte, n)
		for i := range outer {
			outer[i] = in
		}
		packet, messages = compressMsg(t, compound(outer)), n*len(inner)
		if len(packet) <= 65000 {
			break
		}
	}
	// The most alive messages a flat compound of gossipPacketMax holds.
	var flat [][]byte
	for len(compound(append(flat, alive))) <= gossipPacketMax {
		flat = append(flat, alive)
	}
	conn := forgerConn(t)
	to, err := net.ResolveUDPAddr("udp", a.Status().GossipAddr)
	if err != nil {
		t.Fatal(err)
	}
	bad0 := bad.Load()
	for _, p := range [][]byte{packet, compressMsg(t, compound(flat))} {
		if _, err := conn.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
	// Until a's handler is done with its queue.
	last := int64(-1)
	for range 30 {
		time.Sleep(300 * time.Millisecond)
		if n := bad.Load(); n == last && n > bad0 {
			break
		} else {
			last = n
		}
	}
	checks := bad.Load() - bad0
	t.Logf("a datagram of %d bytes holding %d alive messages, and a flat compound of %d: a checked %d signatures; refused %d",
		len(packet), messages, len(flat), checks, gossipRefused(a))
	if checks > 16 {
		t.Errorf("two gossip datagrams made a check %d signatures", checks)
	}
}

// pushNodeState is memberlist's wire form of one member in a push-pull
// state, as a stranger writes it.
type pushNodeState struct {
	Name        string
	Addr        []byte
	Port        uint16
	Meta        []byte
	Incarnation uint32
	State       int
	Vsn         []uint8
}

// TestGossipPushPullCannotFillMemberTable: a stranger pushes, in one
// push-pull, the states of 70,000 made-up members with metadata naming
// the mesh. memberlist's node table has no bound of its own; the guard
// refuses a push-pull announcing more states than the member bound, so
// d's memberlist must not hold more than maxMembers. (Without the guard
// memberlist merges them all, which takes minutes.)
func TestGossipPushPullCannotFillMemberTable(t *testing.T) {
	d := plainGossipNode(t, "d")
	const fakes = 70000
	meta, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	conn, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Minute))
	hdr := pushPullHeader(t, fakes, 0)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// d closes the connection once it has merged the states (or
		// refused them); writes fail from then on.
		w := bufio.NewWriterSize(conn, 1<<16)
		_, _ = w.Write(hdr)
		enc := codec.NewEncoder(w, &codec.MsgpackHandle{})
		for i := range fakes {
			if enc.Encode(pushNodeState{Name: fmt.Sprintf("ghost-%05d", i), Addr: []byte{127, 0, 0, 1}, Port: 9,
				Meta: meta, Incarnation: 1, Vsn: []uint8{1, 5, 2, 0, 0, 0}}) != nil {
				return
			}
		}
		_ = w.Flush()
	}()
	_, _ = io.Copy(io.Discard, conn)
	conn.Close()
	<-wrote
	t.Logf("one push-pull of %d made-up members: d's memberlist holds %d; refused %d", fakes, d.disco.ml.NumMembers(), gossipRefused(d))
	if n := d.disco.ml.NumMembers(); n > maxMembers {
		t.Errorf("one push-pull from a stranger put %d members in d's memberlist, beyond the member bound of %d", n, maxMembers)
	}
}

// TestGossipStreamsBounded: a stranger opens more gossip connections
// than gossipStreams from one address and sends nothing on them.
// memberlist would keep each (and its goroutine) until its TCP timeout
// (10 s); d keeps at most gossipStreams and closes the others at once.
// Once their first bytes are late (gossipFirstBytes), the silent ones
// give their slots to new connections, of the same address too: none of
// those is refused.
func TestGossipStreamsBounded(t *testing.T) {
	d := plainGossipNode(t, "d")
	const n = gossipStreams + 4
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	first := make([]net.Conn, n)
	for i := range first {
		first[i] = dial()
	}
	m := d.disco.guard.metric
	share := func() float64 { return counterValue(m.WithLabelValues("stream", refuseShare)) }
	waitFor(t, "d to take the silent connections", 60*time.Second, func() bool { return share()+float64(d.disco.guard.slots.count()) == n })
	if h := d.disco.guard.slots.count(); h != gossipStreams {
		t.Fatalf("d holds %d silent gossip connections of one address, want %d (the bound)", h, gossipStreams)
	}
	// Those beyond the bound are closed by d at once (a read ends in EOF),
	// the held ones not (their reads time out).
	var closed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range first {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == io.EOF {
				closed.Add(1)
			}
		}()
	}
	wg.Wait()
	if closed.Load() != n-gossipStreams || share() != n-gossipStreams {
		t.Errorf("d closed %d of %d silent gossip connections at once, refused %v beyond the bound; want %d", closed.Load(), n, share(), n-gossipStreams)
	}
	// The held ones stayed silent for those 3 s, beyond gossipFirstBytes:
	// new connections take their slots.
	fresh := map[string]bool{}
	for range gossipStreams {
		fresh[dial().LocalAddr().String()] = true
	}
	slow := func() float64 { return counterValue(m.WithLabelValues("stream", refuseSlow)) }
	refused := func() float64 {
		return share() + counterValue(m.WithLabelValues("stream", refuseBusy)) - (n - gossipStreams)
	}
	took := map[string]bool{} // new connections seen holding a slot
	waitFor(t, "d to take or refuse the new connections", 60*time.Second, func() bool {
		for _, a := range d.disco.guard.slots.remotes() {
			if fresh[a] {
				took[a] = true
			}
		}
		return float64(len(took))+refused() == gossipStreams
	})
	t.Logf("%d silent connections: d held %d, refused %d beyond the bound; of %d new ones, %d took slots (%v of late ones), %v refused",
		n, gossipStreams, n-gossipStreams, gossipStreams, len(took), slow(), refused())
	if refused() != 0 {
		t.Errorf("d refused %v new gossip connections while silent ones past their %v held the slots", refused(), gossipFirstBytes)
	}
}

// TestGossipStreamSlotsShared: when all stream slots are taken, a new
// stream takes the slot of a stream still waiting for its message, of a
// source prefix holding more than its own (of the prefix holding the
// most, the oldest), never one memberlist has answered of a prefix within
// its share.
func TestGossipStreamSlotsShared(t *testing.T) {
	s := streamSlots{byPrefix: make(map[netip.Prefix]int)}
	now := time.Now()
	from := func(a string) *guardConn {
		return &guardConn{inbound: true, prefix: netip.MustParsePrefix(a + "/32")}
	}
	admit := func(c *guardConn, wantEvicted *guardConn, wantReason string) {
		t.Helper()
		ev, _, reason := s.admit(c, now)
		if ev != wantEvicted || reason != wantReason {
			t.Fatalf("admitting a stream of %v: evicted %v, refused %q; want evicted %v, refused %q", c.prefix, ev, reason, wantEvicted, wantReason)
		}
		if reason == "" {
			s.arrived(c)
		}
	}
	var all [4][]*guardConn
	for i, a := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"} {
		for range gossipStreamShare {
			c := from(a)
			admit(c, nil, "")
			all[i] = append(all[i], c)
		}
	}
	admit(from("10.0.0.1"), nil, refuseShare)
	for _, c := range all[0] {
		s.answered(c)
	}
	// Full: the waiting streams of 10.0.0.2, .3 and .4 hold 4 each.
	admit(from("10.0.0.5"), all[1][0], "")
	admit(from("10.0.0.6"), all[2][0], "")
	admit(from("10.0.0.7"), all[3][0], "")
	admit(from("10.0.0.8"), all[1][1], "")
	for _, w := range append([]*guardConn(nil), s.held...) {
		s.answered(w)
	}
	admit(from("10.0.0.9"), nil, refuseBusy)
	// An evicted stream's Close frees nothing more.
	s.release(all[1][0])
	admit(from("10.0.0.9"), nil, refuseBusy)
	s.release(all[0][0])
	admit(from("10.0.0.9"), nil, "")
	if s.count() != gossipStreams || len(s.byPrefix) > gossipStreams {
		t.Errorf("%d streams open in %d prefixes, want %d", s.count(), len(s.byPrefix), gossipStreams)
	}
}

// TestGossipGuardPassesHonestGossip: members gossiping as memberlist
// does (compressed packets with checksums, compressed push-pulls when
// they join, TCP pings when a UDP ping times out) get everything
// through: the mesh forms and no node refuses a packet or stream. A node
// drops a ping request about a member whose signed metadata it has not
// verified yet (memberAddrs), which a loaded machine sends while the
// nodes join (a UDP ping times out and the prober asks the others): those
// are counted apart (kind ping, reason target) and only logged.
func TestGossipGuardPassesHonestGossip(t *testing.T) {
	c := newCluster(t, true)
	var seed string
	c.tweak = func(cfg *Config) {
		cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Interval: 200 * time.Millisecond}
		if seed != "" {
			cfg.Discovery.Join = []string{seed}
		}
	}
	nodes := []*Node{c.add("n0")}
	seed = nodes[0].Status().GossipAddr
	for i := 1; i < 4; i++ {
		nodes = append(nodes, c.add(fmt.Sprintf("n%d", i)))
	}
	waitVerified(t, nodes)
	for _, n := range nodes {
		if m := n.disco.ml.NumMembers(); m != len(nodes) {
			t.Errorf("%s's gossip holds %d members, want %d", n.cfg.Name, m, len(nodes))
		}
		if r := refusedBesidesTargets(t, n); r != 0 {
			t.Errorf("%s refused %v honest gossip packets or streams", n.cfg.Name, r)
		}
		if r := counterValue(n.disco.guard.metric.WithLabelValues("ping", refuseTarget)); r != 0 {
			t.Logf("%s dropped %v ping requests about members it had not verified yet", n.cfg.Name, r)
		}
	}
}

// refusedBesidesTargets is what n's guard counts refused, by every kind
// and reason but ping requests about a target that is not a member.
func refusedBesidesTargets(t *testing.T, n *Node) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() {
		n.disco.guard.metric.Collect(ch)
		close(ch)
	}()
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		ping := false
		for _, l := range d.GetLabel() {
			ping = ping || l.GetName() == "kind" && l.GetValue() == "ping"
		}
		if !ping {
			sum += d.GetCounter().GetValue()
		}
	}
	return sum
}

// TestGossipInboundPushPullBound: a stranger opens a push-pull to d
// whose header announces the states of the members d knows plus 5,120
// (1,024, and the 4,096 members whose metadata the sender may hold
// unverified), then one more. d takes the first, charging the states it
// announces to the bytes held for gossip streams, and refuses the second
// before memberlist allocates its states: it closes the stream, counts it
// (circuitmesh_gossip_refused_total{kind="stream",reason="header"}) and
// logs a WARN line naming the states announced and the bound.
func TestGossipInboundPushPullBound(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0"} }
	logs := c.captureLog("d")
	d := c.add("d")
	g := d.disco.guard
	header := g.metric.WithLabelValues("stream", refuseHeader)
	push := func(states int) net.Conn {
		t.Helper()
		conn, err := net.DialTimeout("tcp", d.Status().GossipAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write(pushPullHeader(t, states, 0)); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	// held says whether d charged the states of push-pulls of that many
	// states in all: it took their headers.
	held := func(states int) bool {
		all, _ := g.slots.heldNow(netip.MustParsePrefix("127.0.0.1/32"))
		return all >= int64(states)*gossipPushStateSize
	}
	known := g.members.count()
	most := known + 5120
	push(most)
	waitFor(t, "d to take or refuse the push-pull at the bound", time.Minute, func() bool { return held(most) || counterValue(header) > 0 })
	if n := counterValue(header); n != 0 {
		t.Fatalf("d knowing %d members refused %v push-pulls of %d states", known, n, most)
	}
	conn := push(most + 1)
	waitFor(t, "d to take or refuse the push-pull beyond the bound", time.Minute, func() bool { return held(2*most+1) || counterValue(header) > 0 })
	if n := counterValue(header); n != 1 {
		t.Fatalf("d knowing %d members took a push-pull of %d states", known, most+1)
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the push-pull of %d states: read %v, want d to close it", most+1, err)
	}
	want := fmt.Sprintf("push-pull of %d states (at most %d)", most+1, most)
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "gossip stream refused") {
			line = l
		}
	}
	t.Logf("d knowing %d members: a push-pull of %d states taken, one of %d refused: %s", known, most, most+1, line)
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "reason=header") || !strings.Contains(line, want) {
		t.Errorf("d's log line for the refused push-pull: %q, want a WARN with reason=header saying %q", line, want)
	}
}

// TestGossipPlaintextStreamCapped: a stranger's plaintext gossip stream,
// plain or compressed, that goes on beyond 20 MiB (memberlist's own bound
// on an encrypted push-pull) after a message type the guard hands on
// unread: memberlist is served 20 MiB of it and its type byte, then a
// read error wrapping ErrGossipRefused, not the end of the stream, so it
// does not act on a truncated message.
func TestGossipPlaintextStreamCapped(t *testing.T) {
	const limit = 20 << 20
	g := fuzzGuard(t)
	long := append([]byte{gmAlive}, make([]byte, limit+1<<20)...)
	for _, tc := range []struct {
		name   string
		stream []byte
	}{{"plain", long}, {"compressed", compressMsg(t, long)}} {
		t.Run(tc.name, func(t *testing.T) {
			c := g.guard(&byteConn{r: bytes.NewReader(tc.stream)}, true)
			if _, _, reason := g.slots.admit(c, time.Now()); reason != "" {
				t.Fatalf("no slot for the stream: %s", reason)
			}
			defer g.slots.release(c)
			n, err := io.Copy(io.Discard, c)
			t.Logf("a stream of %d bytes (%d once decompressed): %d served, then %v", len(tc.stream), len(long), n, err)
			if n < limit || n > limit+1 {
				t.Errorf("served %d bytes of a stream of %d, want 20 MiB and at most the type byte more", n, len(long))
			}
			if !errors.Is(err, ErrGossipRefused) {
				t.Errorf("the stream beyond 20 MiB ends with %v, want an error wrapping ErrGossipRefused", err)
			}
		})
	}
}
