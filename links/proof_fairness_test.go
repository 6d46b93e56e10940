package links

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// proveFrom dials target from a new socket on ip with id's certificate,
// sends a hello that proves it, waits for target's hello (target noted the
// proof before it answered) and hangs up.
func proveFrom(t *testing.T, ip string, id *identity.Identity, target net.Addr) {
	t.Helper()
	udp, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	defer func() { _ = tr.Close(); _ = udp.Close() }()
	cert := id.TLSCertificate()
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPN}, ServerName: "circuitmesh",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := tr.Dial(ctx, target, tlsConf, &quic.Config{HandshakeIdleTimeout: patience, MaxIdleTimeout: patience})
	if err != nil {
		t.Fatalf("proof from %s: %v", ip, err)
	}
	defer func() { _ = conn.CloseWithError(0, "") }()
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.SetDeadline(time.Now().Add(patience))
	h := helloMsg{Version: ProtocolVersion, Instance: rand.Uint64(), Nonce: rand.Uint64(), Mesh: id.Mesh, Node: id.Node}
	if err := writeHello(s, h); err != nil {
		t.Fatal(err)
	}
	if _, err := readHello(s); err != nil {
		t.Fatalf("proof from %s: %v", ip, err)
	}
}

// TestProofsOfOneHolderDoNotEvictOthers: a node that linked gives its next
// attempt up after answering the Retry while only the node's reserve
// admits (as in TestOwnUnprovenHandshakesDoNotBarMember); its proof
// forgives that abandoned handshake's ending. Between its link and the
// abandoned attempt, another certificate holder proves its certificate
// from twice as many source addresses (8 IPs, many ports each) as the
// node remembers proofs: the member's next link setup still succeeds at
// once. Before, the holder's proofs pushed the member's out of the table,
// the abandoned attempt counted as failed and barred the member's prefix
// from the reserve for failQuiet.
func TestProofsOfOneHolderDoNotEvictOthers(t *testing.T) {
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		c.testHandshakeRate = 1e6 // the holder's proofs are not slowed
		c.HandshakeTimeout = 2 * time.Second
		c.OnRefused = nil
	})
	g := a.gate
	g.mu.Lock()
	g.forgiveWindow = 2 * patience // the proofs do not age out however slow the machine
	g.mu.Unlock()

	udp, err := net.ListenPacket("udp", "127.0.0.8:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = udp.Close() })
	dc := &deafConn{PacketConn: udp}
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) { c.PacketConn = dc })
	if got := linkSetups(t, b, a, 1, 1); got != 1 {
		t.Fatal("the first link setup failed")
	}

	holder := issue(t, ca, "x")
	for i := range 2 * maxProofs {
		proveFrom(t, fmt.Sprintf("127.0.9.%d", 1+i%8), holder, a.LocalAddr())
	}

	g.mu.Lock()
	g.node.Rate, g.node.Tokens = 0, 0 // only the reserve admits
	g.mu.Unlock()
	failed := a.HandshakeStats().Failed
	dc.armed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err = b.Dial(ctx, a.LocalAddr().String())
	cancel()
	if err == nil {
		t.Fatal("a dial that hears nothing after the Retry linked")
	}
	waitFor(t, "the node to give the abandoned handshake up", patience, func() bool {
		return a.HandshakeStats().Failed > failed && a.HandshakeStats().InProgress == 0
	})
	dc.armed.Store(false)
	dc.deaf.Store(false)
	// A few tries, well within failQuiet, for a loaded machine.
	if got := linkSetups(t, b, a, 1, 3); got != 1 {
		t.Fatalf("a member is refused for giving an attempt up after another holder proved from %d addresses: %+v", 2*maxProofs, a.HandshakeStats())
	}
}

// TestGateProofTableFair: one name proving from many addresses holds at
// most maxProofsPerName proofs and evicts no other name's; the table
// stays within maxProofs as more names prove, evicting first from the
// names that hold the most, and its count per name stays exact.
func TestGateProofTableFair(t *testing.T) {
	g := spentGate()
	now := time.Now()
	addr := func(i int) netip.AddrPort { return netip.MustParseAddrPort(fmt.Sprintf("10.60.%d.%d:1", i/256, i%256)) }
	note := func(i int, name string) {
		g.mu.Lock()
		defer g.mu.Unlock()
		now = now.Add(time.Millisecond) // the holder's proofs are the newest
		g.noteProofLocked(addr(i), name, now)
	}
	check := func(when string) {
		t.Helper()
		sum := 0
		for _, n := range g.proofsOf {
			sum += n
		}
		if len(g.proofs) > maxProofs || sum != len(g.proofs) {
			t.Fatalf("%s: %d proofs (at most %d), %d counted per name", when, len(g.proofs), maxProofs, sum)
		}
	}
	const honest = maxProofs - 2*maxProofsPerName
	for i := range honest {
		note(i, fmt.Sprint("n", i))
	}
	for i := range 4 * maxProofs {
		note(honest+i, "x")
	}
	check("after one holder proved from many addresses")
	if n := g.proofsOf["x"]; n != maxProofsPerName {
		t.Fatalf("one holder holds %d proofs, want %d", n, maxProofsPerName)
	}
	for i := range honest {
		if p, ok := g.proofs[addr(i)]; !ok || p.name != fmt.Sprint("n", i) {
			t.Fatalf("the proof of n%d was evicted by one holder's", i)
		}
	}
	// New names fill the table: the holder of the most goes first, then
	// the oldest proofs.
	for i := range 3 * maxProofsPerName {
		note(2*honest+i, fmt.Sprint("new", i))
	}
	check("after new names filled the table")
	if n := g.proofsOf["x"]; n != 1 {
		t.Fatalf("the holder of the most proofs kept %d of them as new names filled the table, want 1", n)
	}
}
