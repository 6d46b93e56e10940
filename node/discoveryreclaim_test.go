package node

import (
	"encoding/json"
	"math"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestRestartAtNewAddressRelinked: b crashes (its gossip goes silent, no
// leave) and restarts under its name at a new gossip and link port (a
// rescheduled container, a new DHCP lease) and joins through s again.
// memberlist refused a known name's new address until the old entry was
// pushed out: a listed b at its old, dead gossip address for 40–46 s (b's
// links, which it dials itself, came up at once). Now a lists b at its new
// address within a few seconds of the old one's death (5.5–6.6 s).
func TestRestartAtNewAddressRelinked(t *testing.T) {
	c := newCluster(t, true)
	var crash *mutedGossip
	var cert *identity.Identity
	seed := seededGossip(c, 4, 4, func(cfg *Config) {
		switch {
		case cfg.Name != "b":
		case crash == nil:
			crash, cert = mutableGossip(t), cfg.Identity
			cfg.Discovery.BindAddr, cfg.Discovery.Transport = crash.bind, crash
		default:
			cfg.Identity = cert // the same certificate
		}
	})
	s := c.add("s")
	seed(s)
	a := c.add("a")
	b := c.add("b")
	waitVerified(t, []*Node{s, a, b})
	waitFor(t, "a and s to link to b", patience, func() bool { return a.link("b") != nil && s.link("b") != nil })
	old := b.Status().GossipAddr
	crash.muted.Store(true) // b's gossip ends without a leave
	b.Close()
	delete(c.nodes, "b")
	start := time.Now()
	b = c.add("b")
	moved := gossipAddr(t, b)
	const bound = 15 * time.Second
	var took, linked time.Duration
	waitFor(t, "a to list b at its new address and link to it", 2*patience, func() bool {
		if l := a.link("b"); linked == 0 && l != nil && l.RemoteAddr().String() == b.Addr().String() {
			linked = time.Since(start)
		}
		if linked == 0 || !listedAt(a, "b", moved) {
			return false
		}
		took = time.Since(start)
		return true
	})
	t.Logf("b restarted at gossip %s (was %s): a linked to it %v after, and listed it there %v after",
		moved, old, linked.Round(time.Millisecond), took.Round(time.Millisecond))
	if took > bound {
		t.Errorf("a took %v to list and link to b at its new address, want within %v", took.Round(time.Millisecond), bound)
	}
}

// forgeDeadThenClaim declares member dead at d (dead messages from
// mallory, at rising incarnations until d's memberlist takes one) and at
// once claims its name at conn's address with meta. It fails the test if
// d lists member at conn's address a second later, and waits until d
// lists it at real again (the member refutes the dead message).
func forgeDeadThenClaim(t *testing.T, d *Node, conn *net.UDPConn, member string, real *net.UDPAddr, meta []byte, what string) {
	t.Helper()
	own, to := conn.LocalAddr().String(), gossipAddr(t, d)
	for n := uint32(0); n < 100 && listedAt(d, member, real); n++ {
		if _, err := conn.WriteToUDP(forgedDeadFrom(t, member, "mallory", n, nil), to); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if listedAt(d, member, real) {
		t.Fatalf("%s: d's memberlist did not take the forged dead messages", what)
	}
	// The claim goes as soon as memberlist took the dead message, before
	// the member's refutation can list it again.
	if _, err := conn.WriteToUDP(forgedAlive(t, member, own, 100, meta, nil), to); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if listedAt(d, member, conn.LocalAddr().(*net.UDPAddr)) {
		t.Errorf("%s: d's memberlist lists %s at the stranger's address", what, member)
	}
	waitFor(t, member+", refuting, to be listed at its real gossip address", 30*time.Second, func() bool { return listedAt(d, member, real) })
}

// TestAttackForgedDeadThenClaimCannotMoveLiveMember: memberlist now gives
// a name declared dead to the first alive message at another address
// (DeadNodeReclaimTime). A stranger declares the live member b dead (a
// dead message from another member, which anyone with the gossip key can
// write) and at once claims b's name at its own address with b's signed
// metadata (which names b's address), with unsigned metadata naming its
// own, and with metadata naming its own signed by mallory, a member of
// the mesh with a certificate of its own. None may move b: d lists b at
// its real gossip and link addresses, and keeps its link to b.
func TestAttackForgedDeadThenClaimCannotMoveLiveMember(t *testing.T) {
	c, nodes := gossipNodes(t, "b", "d")
	b, d := nodes[0], nodes[1]
	conn := forgerConn(t)
	real, link := gossipAddr(t, b), b.disco.linkAddr()
	l := settledLink(t, d, b)
	var signed []byte
	for _, m := range d.disco.ml.Members() {
		if m.Name == "b" {
			signed = m.Meta
		}
	}
	mallory, err := c.ca.Issue("mallory", 0)
	if err != nil {
		t.Fatal(err)
	}
	unsigned, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: math.MaxUint64, Gossip: conn.LocalAddr().String()})
	claims := map[string][]byte{"b's own signed metadata": signed, "unsigned metadata": unsigned,
		"metadata signed by mallory": signMeta(mallory.Key, "test", "b", unsigned)}
	for what, meta := range claims {
		forgeDeadThenClaim(t, d, conn, "b", real, meta, what)
		if got := linkAddrOf(d, "b"); got != link {
			t.Errorf("%s: d lists b at link address %q, want %s", what, got, link)
		}
	}
	if d.link("b") != l || linkEnded(l) {
		t.Error("d's link to b was closed")
	}
}

// TestAttackForgedDeadThenClaimCannotMoveUnverifiedMember is
// TestAttackForgedDeadThenClaimCannotMoveLiveMember for a live member u
// whose metadata d cannot verify (unsigned): the stranger's claim, with
// unsigned metadata naming its own address, must not move u while
// memberlist still holds u's dead entry at its real address.
func TestAttackForgedDeadThenClaimCannotMoveUnverifiedMember(t *testing.T) {
	_, nodes := gossipNodes(t, "d")
	d := nodes[0]
	fake := &fakeMeta{}
	u := fakeMemberlist(t, "u", nil, fake)
	ln := u.LocalNode()
	real := &net.UDPAddr{IP: ln.Addr, Port: int(ln.Port)}
	meta, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: 1, Gossip: real.String()})
	fake.set(meta)
	if err := u.UpdateNode(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Join([]string{d.Status().GossipAddr}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d to list u", patience, func() bool { return listedAt(d, "u", real) })
	conn := forgerConn(t)
	claim, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test", TS: 2, Gossip: conn.LocalAddr().String()})
	forgeDeadThenClaim(t, d, conn, "u", real, claim, "unsigned metadata")
}
