package node

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/hashicorp/memberlist"
)

// forgedLeave is a memberlist leave of node as one plaintext UDP packet: a
// dead message at incarnation inc whose sender is the node itself, which
// anyone can write.
func forgedLeave(t *testing.T, node string, inc uint32) []byte {
	t.Helper()
	return forgedDeadFrom(t, node, node, inc, nil)
}

// listedAt reports whether n's memberlist holds member alive at the
// gossip address at.
func listedAt(n *Node, member string, at *net.UDPAddr) bool {
	for _, m := range n.disco.ml.Members() {
		if m.Name == member {
			return unmapped(&net.UDPAddr{IP: m.Addr, Port: int(m.Port)}) == unmapped(at)
		}
	}
	return false
}

// settledLink waits until the link between gossip members d and b is the
// one that stays, and returns d's end. Both may have dialled the other
// when they met: the duplicate-link rule then keeps one of the two links
// and closes the other, on a loaded machine a second or more after d
// first held a link to b. It is settled once neither is dialling the
// other (nor has yet to note the end of a link it dialled) and both hold
// the two ends of one link (one dialled, the other not): a node does not
// dial a member it is linked to.
func settledLink(t *testing.T, d, b *Node) links.Link {
	t.Helper()
	dialing := func(n *Node, peer string) bool {
		n.disco.mu.Lock()
		defer n.disco.mu.Unlock()
		return n.disco.dialing[peer] || n.disco.endingLocked(peer)
	}
	var l links.Link
	waitFor(t, d.cfg.Name+"'s link to "+b.cfg.Name+" to settle", patience, func() bool {
		l = d.link(b.cfg.Name)
		back := b.link(d.cfg.Name)
		return l != nil && back != nil && l.Outbound() != back.Outbound() && !linkEnded(l) && !linkEnded(back) &&
			!dialing(d, b.cfg.Name) && !dialing(b, d.cfg.Name) && d.link(b.cfg.Name) == l
	})
	return l
}

// TestAttackGossipForgedLeaveCannotMoveMember: a stranger forges a live
// member's leave (a dead message whose sender is the member), then sends
// an alive message for it at a victim's address with the member's own
// signed metadata, which every node gossips. memberlist (v0.7.0) gives a
// name that left a new address whatever its incarnation. Before the
// signature covered the gossip address, the victim's address then counted
// as a verified member's, 40 ping requests naming it made the node send
// the victim 43 datagrams in 2 s, and the member's own alive messages at
// its real address were refused as conflicting. The metadata names the
// member's gossip address: the victim's address must never count, the
// victim get nothing, and the member stay listed and linked at its real
// addresses.
func TestAttackGossipForgedLeaveCannotMoveMember(t *testing.T) {
	d, b := gossipPair(t)
	forgedLeaveCannotMoveMember(t, d, b)
}

// TestAttackGossipForgedLeaveCannotMoveMemberInsecure is
// TestAttackGossipForgedLeaveCannotMoveMember in a mesh without a CA
// (Insecure), where the guard counts every member memberlist holds: the
// address check of NotifyAlive needs no certificate.
func TestAttackGossipForgedLeaveCannotMoveMemberInsecure(t *testing.T) {
	c := newCluster(t, false)
	var seed string
	c.tweak = gossipJoining(&seed)
	b := c.add("b")
	seed = b.Status().GossipAddr
	d := c.add("a")
	c.tweak = nil
	waitVerified(t, []*Node{b, d})
	forgedLeaveCannotMoveMember(t, d, b)
}

// forgedLeaveCannotMoveMember runs the attack of
// TestAttackGossipForgedLeaveCannotMoveMember on d about b, linked
// members of one mesh.
func forgedLeaveCannotMoveMember(t *testing.T, d, b *Node) {
	victim, conn := forgerConn(t), forgerConn(t)
	got, _ := countDatagrams(victim)
	va := victim.LocalAddr().(*net.UDPAddr)
	to, real, link := gossipAddr(t, d), gossipAddr(t, b), b.disco.linkAddr()
	var meta []byte
	for _, m := range d.disco.ml.Members() {
		if m.Name == b.cfg.Name {
			meta = m.Meta
		}
	}
	if meta == nil {
		t.Fatalf("%s does not list %s", d.cfg.Name, b.cfg.Name)
	}
	t.Logf("%s's signed metadata: %d bytes", b.cfg.Name, len(meta))
	l := settledLink(t, d, b)
	// A copy of the member's verified metadata at another address, as
	// memberlist hands it over after a forged leave: refused whatever
	// memberlist's own checks do (the member may refute the leave first,
	// and memberlist then refuses the alive message as conflicting).
	err := d.disco.NotifyAlive(&memberlist.Node{Name: b.cfg.Name, Addr: va.IP.To4(), Port: uint16(va.Port), Meta: meta,
		State: memberlist.StateAlive, PMin: 1, PMax: 5, PCur: 2})
	if !errors.Is(err, errMetaGossipAddr) {
		t.Errorf("%s's signed metadata at the victim's address: NotifyAlive returned %v, want %v", b.cfg.Name, err, errMetaGossipAddr)
	}
	for inc := range uint32(5) {
		if _, err := conn.WriteToUDP(forgedLeave(t, b.cfg.Name, inc), to); err != nil {
			t.Fatal(err)
		}
	}
	// The alive message goes as soon as memberlist took the leave, before
	// the member's refutation (0.27 s or more after it) can list it again.
	waitFor(t, "memberlist to take the forged leave", 10*time.Second, func() bool { return !listedAt(d, b.cfg.Name, real) })
	if _, err := conn.WriteToUDP(forgedAlive(t, b.cfg.Name, va.String(), 100, meta, nil), to); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if d.disco.guard.members.has(unmapped(va)) {
		t.Error("the victim's address counts as a verified member's gossip address")
	}
	if listedAt(d, b.cfg.Name, va) {
		t.Errorf("%s's memberlist lists %s at the victim's address", d.cfg.Name, b.cfg.Name)
	}
	before := got.Load()
	const sent = 40
	pingRequestsNaming(t, conn, to, va, b.cfg.Name, sent)
	time.Sleep(2 * time.Second)
	n := got.Load() - before
	t.Logf("the victim got %d datagrams after %d ping requests naming it", n, sent)
	if n > 0 {
		t.Errorf("the victim got %d datagrams after %d ping requests naming it", n, sent)
	}
	waitFor(t, "the member, refuting the forged leave, to be listed alive at its real gossip address", 30*time.Second, func() bool {
		return listedAt(d, b.cfg.Name, real)
	})
	waitFor(t, "the member's real gossip address to count as a verified member's", 10*time.Second, func() bool {
		return d.disco.guard.members.has(unmapped(real))
	})
	if got := linkAddrOf(d, b.cfg.Name); got != link {
		t.Errorf("%s lists %s at %q, want %s", d.cfg.Name, b.cfg.Name, got, link)
	}
	if d.link(b.cfg.Name) != l || linkEnded(l) {
		t.Errorf("%s's link to %s was closed", d.cfg.Name, b.cfg.Name)
	}
	if d.disco.guard.members.has(unmapped(va)) {
		t.Error("the victim's address counts as a verified member's gossip address")
	}
}

// TestAttackGossipForgedLeaveKeepsLink: a forged leave alone, of a linked
// member, once at an incarnation the member refutes and once at the
// largest (which it cannot outbid: memberlist holds it left), costs the
// member neither its link, its route nor its place in Members: the node
// keeps a member routing reaches (NotifyLeave) and does not close a link
// whose peer routing reaches (step).
func TestAttackGossipForgedLeaveKeepsLink(t *testing.T) {
	d, b := gossipPair(t)
	conn := forgerConn(t)
	to, real, link := gossipAddr(t, d), gossipAddr(t, b), b.disco.linkAddr()
	l := settledLink(t, d, b)
	check := func(what string) {
		t.Helper()
		rt, routed := d.router.lookup(b.cfg.Name)
		if got := linkAddrOf(d, b.cfg.Name); got != link || d.link(b.cfg.Name) != l || linkEnded(l) || !routed || !rt.Reachable {
			t.Fatalf("%s: %s lists %s at %q (want %s), link kept %v, routed %v", what, d.cfg.Name, b.cfg.Name, got, link, d.link(b.cfg.Name) == l && !linkEnded(l), routed && rt.Reachable)
		}
	}
	sent := time.Now()
	if _, err := conn.WriteToUDP(forgedLeave(t, b.cfg.Name, 50), to); err != nil {
		t.Fatal(err)
	}
	// The member may refute before a poll sees the leave taken: then
	// there is no refutation time to tell.
	var left time.Time
	waitFor(t, "the member to be listed again after a forged leave", 30*time.Second, func() bool {
		check("refutable forged leave")
		listed := listedAt(d, b.cfg.Name, real)
		if !listed && left.IsZero() {
			left = time.Now()
		}
		return listed && (!left.IsZero() || time.Since(sent) > 3*time.Second)
	})
	if !left.IsZero() {
		t.Logf("memberlist listed the member again %v after a forged leave", time.Since(sent).Round(10*time.Millisecond))
	}
	if _, err := conn.WriteToUDP(forgedLeave(t, b.cfg.Name, math.MaxUint32), to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "memberlist to take the forged leave at the largest incarnation", 10*time.Second, func() bool { return !listedAt(d, b.cfg.Name, real) })
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		check("forged leave at the largest incarnation")
	}
	t.Logf("after a forged leave at the largest incarnation, memberlist lists the member again: %v", listedAt(d, b.cfg.Name, real))
}

// TestGossipOlderMetadataAddressNotVerified: a member of a version before
// the signed gossip address signs metadata that names none, so a copy of
// it is taken at any address, as before: after a forged leave memberlist
// lists the member at a victim's address. Such an address must not count
// as a verified member's: the node drops every ping request naming it.
// Before, the older metadata verified and the victim's address counted.
func TestGossipOlderMetadataAddressNotVerified(t *testing.T) {
	d, b := gossipPair(t)
	victim, conn := forgerConn(t), forgerConn(t)
	va := victim.LocalAddr().(*net.UDPAddr)
	to, real := gossipAddr(t, d), gossipAddr(t, b)
	// b's metadata as a node before the field signs it, newer than the
	// metadata d holds.
	body, err := json.Marshal(memberMeta{Link: b.disco.linkAddr(), Mesh: b.cfg.Mesh, TS: uint64(time.Now().Add(time.Hour).UnixMilli())})
	if err != nil {
		t.Fatal(err)
	}
	meta := signMeta(b.identity().Key, b.cfg.Mesh, b.cfg.Name, body)
	// A leave at the largest incarnation, which the member cannot refute
	// (its refutation wraps to incarnation 0): memberlist then takes the
	// alive message at a new address whenever it comes.
	if _, err := conn.WriteToUDP(forgedLeave(t, b.cfg.Name, math.MaxUint32), to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "memberlist to take the forged leave", 10*time.Second, func() bool { return !listedAt(d, b.cfg.Name, real) })
	if _, err := conn.WriteToUDP(forgedAlive(t, b.cfg.Name, va.String(), 100, meta, nil), to); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "memberlist to list the member at the victim's address", 10*time.Second, func() bool {
		return listedAt(d, b.cfg.Name, va)
	})
	before := d.disco.guard.Refused()
	const sent = 40
	pingRequestsNaming(t, conn, to, va, b.cfg.Name, sent)
	waitFor(t, "the node to drop the ping requests naming the victim's address", 10*time.Second, func() bool {
		return d.disco.guard.Refused()-before >= sent || d.disco.guard.members.has(unmapped(va))
	})
	if d.disco.guard.members.has(unmapped(va)) {
		t.Errorf("the victim's address counts as a verified member's gossip address, after metadata naming none verified")
	}
}

// pingRequestsNaming sends to, from conn, n plaintext ping requests of a
// stranger for member at address target (answers to conn).
func pingRequestsNaming(t *testing.T, conn *net.UDPConn, to, target *net.UDPAddr, member string, n int) {
	t.Helper()
	ca := conn.LocalAddr().(*net.UDPAddr)
	for seq := range uint32(n) {
		req := gossipPacket(t, gmIndirectPing, gossipIndirectPing{SeqNo: 100 + seq, Target: target.IP.To4(), Port: uint16(target.Port),
			Node: member, SourceAddr: ca.IP.To4(), SourcePort: uint16(ca.Port), SourceNode: "stranger"}, nil)
		if _, err := conn.WriteToUDP(req, to); err != nil {
			t.Fatal(err)
		}
	}
}
