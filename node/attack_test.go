package node

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/routing"
)

// wireEntry is one routing entry as the attacker encodes it from the wire
// format in docs/PROTOCOL.md (section "Routing messages").
type wireEntry struct {
	kind   byte // 1 update, 2 request, 3 attestation
	origin string
	seqno  uint16
	metric uint32
	hops   uint16
	att    []byte
}

func encodeRouting(version byte, es []wireEntry) []byte {
	b := []byte{version}
	b = binary.BigEndian.AppendUint16(b, uint16(len(es)))
	for _, e := range es {
		b = append(b, e.kind, byte(len(e.origin)))
		b = append(b, e.origin...)
		b = binary.BigEndian.AppendUint16(b, e.seqno)
		switch e.kind {
		case 1:
			b = binary.BigEndian.AppendUint32(b, e.metric)
			b = binary.BigEndian.AppendUint16(b, e.hops)
		case 3:
			b = binary.BigEndian.AppendUint16(b, uint16(len(e.att)))
			b = append(b, e.att...)
		}
	}
	return b
}

// routingWire is the current routing wire version (docs/PROTOCOL.md §2.1).
const routingWire = 3

// decodeAttestations returns the attestation entries of a current
// routing message (nil for anything else).
func decodeAttestations(p []byte) []wireEntry {
	if len(p) < 3 || p[0] != routingWire {
		return nil
	}
	var out []wireEntry
	n := int(binary.BigEndian.Uint16(p[1:]))
	p = p[3:]
	for range n {
		if len(p) < 2 {
			return out
		}
		kind, l := p[0], int(p[1])
		if len(p) < 2+l+2 {
			return out
		}
		e := wireEntry{kind: kind, origin: string(p[2 : 2+l]), seqno: binary.BigEndian.Uint16(p[2+l:])}
		q := p[2+l+2:]
		switch kind {
		case 1:
			p = q[6:]
		case 2:
			p = q[1:]
		case 3:
			al := int(binary.BigEndian.Uint16(q))
			e.att = append([]byte(nil), q[2:2+al]...)
			out = append(out, e)
			p = q[2+al:]
		default:
			return out
		}
	}
	return out
}

// attacker is a malicious mesh member: a real QUIC transport with a valid
// certificate that speaks the routing protocol by hand.
type attacker struct {
	t    *testing.T
	tr   *links.QUICTransport
	link links.Link
	cert *originCertifier // signs with the attacker's own valid key

	mu   sync.Mutex
	seen map[string]wireEntry // attestations heard, by origin
}

func (a *attacker) LinkUp(links.Link) {}
func (a *attacker) Routing(_ links.Link, p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range decodeAttestations(p) {
		a.seen[e.origin] = e
	}
}
func (a *attacker) CostChanged(links.Link, links.Quality) {}
func (a *attacker) LinkDown(links.Link, error)            {}

func (a *attacker) heard(origin string) (wireEntry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.seen[origin]
	return e, ok
}

func newAttacker(t *testing.T, c *cluster, name string, target *Node) *attacker {
	t.Helper()
	id, err := c.ca.Issue(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{t: t, seen: map[string]wireEntry{}, cert: newOriginCertifier(id, testLogger(t), 16)}
	a.tr, err = links.NewQUICTransport(links.QUICConfig{Identity: id, Handler: a, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.tr.Close() })
	a.link, err = a.tr.Dial(ctxT(t, 10*time.Second), target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// send delivers payloads in order and waits until target has processed
// them all (decoded or refused as malformed).
func (a *attacker) send(target *Node, payloads ...[]byte) {
	a.t.Helper()
	st := target.RoutingStats()
	before := st.MessagesIn + st.Malformed
	for _, p := range payloads {
		for a.link.SendRouting(p) != nil {
			select {
			case <-a.link.Done():
				a.t.Fatalf("attacker link down: %v", a.link.Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
	deadline := time.Now().Add(patience)
	for {
		st := target.RoutingStats()
		if st.MessagesIn+st.Malformed >= before+uint64(len(payloads)) {
			return
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("target processed %d of %d attack messages", st.MessagesIn+st.Malformed-before, len(payloads))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hijack advertises origin at metric 0 (and at metric 1, one hop) with
// its seqno bumped by 10, in every form the attacker can produce: the old wire version without any
// attestation, the origin's real attestation replayed for the bumped seqno,
// and an attestation signed with the attacker's own valid certificate.
func (a *attacker) hijack(origin string, seqno uint16) [][]byte {
	bumped := seqno + 10
	var out [][]byte
	// Metric 0 at hop 0 (claiming to be the origin), and the smallest
	// distance a relay can plausibly claim.
	for _, upd := range []wireEntry{
		{kind: 1, origin: origin, seqno: bumped},
		{kind: 1, origin: origin, seqno: bumped, metric: 1, hops: 1},
	} {
		out = append(out, encodeRouting(1, []wireEntry{upd}), encodeRouting(routingWire, []wireEntry{upd}))
		if real, ok := a.heard(origin); ok {
			real.seqno = bumped
			out = append(out, encodeRouting(routingWire, []wireEntry{real, upd}))
		}
		own, err := a.cert.Attest(origin, ^uint64(0), bumped) // the latest epoch: checked, not ignored
		if err != nil {
			a.t.Fatal(err)
		}
		out = append(out, encodeRouting(routingWire, []wireEntry{{kind: 3, origin: origin, seqno: bumped, att: own}, upd}))
	}
	return out
}

// fill advertises n made-up names, with and without forged attestations.
func (a *attacker) fill(n int) [][]byte {
	var out [][]byte
	var v1, v2 []wireEntry
	for i := range n {
		name := fmt.Sprintf("ghost-%d", i)
		upd := wireEntry{kind: 1, origin: name, seqno: 1, metric: 10, hops: 1}
		v1 = append(v1, upd)
		own, err := a.cert.Attest(name, 0, 1)
		if err != nil {
			a.t.Fatal(err)
		}
		v2 = append(v2, wireEntry{kind: 3, origin: name, seqno: 1, att: own}, upd)
		if len(v1) == 64 || i == n-1 {
			out = append(out, encodeRouting(1, v1))
			v1 = nil
		}
		if len(v2) == 64 || i == n-1 {
			out = append(out, encodeRouting(routingWire, v2))
			v2 = nil
		}
	}
	return out
}

// serveName answers service "who" on n with n's name.
func serveName(t *testing.T, n *Node) {
	serve(t, n, "who", func(c io.ReadWriteCloser) { io.WriteString(c, n.Name()) })
}

func whoIs(t *testing.T, from *Node, dest string) string {
	t.Helper()
	conn, err := from.Dial(ctxT(t, 10*time.Second), dest, "who")
	if err != nil {
		return "error: " + err.Error()
	}
	defer conn.Close()
	b, err := io.ReadAll(conn)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// A mesh member advertising b at metric 0 with a bumped seqno does not
// attract b's traffic: a keeps routing to b through c, and a service on b
// answers. Nor does it cost a its route to b for a moment: a publishes no
// change of b from the attack's start.
//
// Link costs are pinned. Measured costs move on a loaded machine (the
// first samples of a new link, RTT spikes), and a rise of c-b's cost past
// half again a's feasibility distance for b (held since a advertises b to
// m) makes c's update unfeasible at a, which then has no route to b until
// b's new seqno answers its request: a drop that any neighbour of a other
// than c causes, attacker or not, and that this test once took for the
// attack's doing.
func TestAttackRouteHijack(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.LinkCosts = map[string]links.Cost{"a": 100, "b": 100, "c": 100, "m": 100}
	}
	c.build("a-c", "c-b")
	c.waitRoute("a", "b", 2)
	serveName(t, c.nodes["b"])
	a := c.nodes["a"]
	m := newAttacker(t, c, "m", a)
	c.waitRoute("a", "m", 1)
	var mu sync.Mutex
	var changes []string
	stop, err := a.SubscribeFunc(func(ev Event) {
		if ev.Peer == "b" {
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%v %+v", ev.Kind, ev.Route))
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for range 5 {
		p, _ := a.Peer("b")
		m.send(a, m.hijack("b", p.Seqno)...)
		if p, _ := a.Peer("b"); !p.Reachable || p.NextHop != "c" {
			t.Fatalf("after the hijack a routes to b as %+v, want via c", p)
		}
		if got := whoIs(t, a, "b"); got != "b" {
			t.Fatalf("b/who answered %q after the hijack, want b", got)
		}
	}
	mu.Lock()
	if len(changes) > 0 {
		t.Errorf("a published %d changes of b during the hijack: %v", len(changes), changes)
	}
	mu.Unlock()
	if _, ok := m.heard("b"); !ok {
		t.Error("the attacker never heard b's attestation to replay")
	}
}

// 5,000 made-up names leave no trace in any table, and a node that joins
// afterwards is reachable as usual.
func TestAttackTableFill(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-c")
	c.waitConverged()
	a := c.nodes["a"]
	m := newAttacker(t, c, "m", a)
	c.waitRoute("a", "m", 1)
	flood := m.fill(5000)
	before := a.RoutingStats()
	start := time.Now()
	m.send(a, flood...)
	elapsed := time.Since(start)
	for _, name := range []string{"a", "c"} {
		for _, p := range c.nodes[name].Peers() {
			if strings.HasPrefix(p.Name, "ghost-") {
				t.Fatalf("%s has a route to made-up %s", name, p.Name)
			}
		}
	}
	st := a.RoutingStats()
	t.Logf("after 5000 made-up names (sent and processed in %v): destinations %d, uncertified %d, bad attestations %d, throttled %d",
		elapsed, st.Destinations, st.Uncertified, st.BadAttestations, st.ThrottledAttestations)
	// The per-neighbour budget is a token bucket: a burst of
	// 5 × MaxVerifyFailures, refilled at MaxVerifyFailures a second. The
	// flood was verified within elapsed, so at most burst + rate × elapsed
	// forged attestations were worth verifying, however slowly the machine
	// ran; without the budget all 5,000 would be.
	rate := float64(routing.DefaultMaxVerifyFailures)
	budget := uint64(5*rate + rate*elapsed.Seconds() + 1)
	if bad := st.BadAttestations - before.BadAttestations; bad > budget {
		t.Errorf("a verified %d forged attestations in %v; the per-neighbour budget allows %d", bad, elapsed, budget)
	}
	c.build("c-d")
	c.waitRoute("a", "d", 2)
	serveName(t, c.nodes["d"])
	if got := whoIs(t, a, "d"); got != "d" {
		t.Fatalf("d/who answered %q", got)
	}
}

// Forged origins never spread past the attacker's neighbour, and when the
// attacker leaves no route to a forged name or through it remains.
func TestAttackForgedOriginsVanish(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-c", "c-b")
	c.waitRoute("a", "b", 2)
	a, cn := c.nodes["a"], c.nodes["c"]
	m := newAttacker(t, c, "m", a)
	c.waitRoute("a", "m", 1)
	p, _ := a.Peer("b")
	m.send(a, append(m.fill(100), m.hijack("b", p.Seqno)...)...)
	// Wait until a's next update reached c.
	in := cn.RoutingStats().MessagesIn
	deadline := time.Now().Add(20 * time.Second)
	for cn.RoutingStats().MessagesIn < in+2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	check := func(when string) {
		t.Helper()
		for _, name := range []string{"a", "b", "c"} {
			for _, p := range c.nodes[name].Peers() {
				if strings.HasPrefix(p.Name, "ghost-") {
					t.Fatalf("%s: %s has a route to made-up %s", when, name, p.Name)
				}
			}
		}
		if p, _ := cn.Peer("b"); !p.Reachable || p.NextHop != "b" {
			t.Fatalf("%s: c routes to b as %+v", when, p)
		}
	}
	check("during the attack")
	m.tr.Close()
	deadline = time.Now().Add(20 * time.Second)
	for {
		if p, _ := a.Peer("m"); !p.Reachable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a still reaches m after it left")
		}
		time.Sleep(10 * time.Millisecond)
	}
	check("after the attacker left")
	// a had taken the attacker's (replayed, same-seqno) route to b; with it
	// gone, the route via c is unfeasible until b answers a seqno request,
	// so it comes back after a round trip to b, not at once.
	c.waitNextHop("a", "b", "c")
}
