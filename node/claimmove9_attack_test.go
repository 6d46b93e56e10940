package node

import (
	"testing"
	"time"
)

// A member with the gossip key claims an honest node h's live address A
// under a made-up name; a node dials the claim and the handshake proves
// h there, which bars A for banTime to every name but h's. Then h moves
// (restarts on another port, or its pod gets another address) and node k
// takes A (a restart on h's former port, a reused pod address), each
// announcing its address in metadata signed with its certificate. Before,
// k was not dialled at A for the rest of the ten minutes at every node
// that had dialled the claim: an attacker that claims every member's
// address once per banTime kept each node that restarts onto an address
// another node held from being dialled for up to ten minutes. Now the bar
// ends once h's verified signed metadata names another address; while h
// still announces A, or only unverified metadata says it moved, a
// certified member claiming A stays barred.
func TestAttackClaimBarOutlivesItsHoldersMove(t *testing.T) {
	const a1, a2, a3 = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
	h := Member{Name: "h", LinkAddr: a1}
	k := Member{Name: "k", LinkAddr: a3}
	d := &discovery{backoff: map[string]*addrBackoff{}, proven: map[string]string{}, unproven: map[string]*addrBackoff{}, vouch: true,
		members: map[string]gossipMember{h.Name: {Member: h, ok: true, verified: true}, k.Name: {Member: k, ok: true, verified: true}}}
	d.mu.Lock()
	defer d.mu.Unlock()
	barred := func(m Member, at time.Time) bool {
		return !d.mayDialLocked(m.Name, m.LinkAddr, at) || d.memberBannedLocked(m.Name, m.LinkAddr, at)
	}
	now := time.Now()
	d.claimFailedLocked(Member{Name: "zz", LinkAddr: a1}, h.Name, now)
	later := now.Add(time.Minute)

	// k, certified, claims A while h still announces it: barred.
	k.LinkAddr = a1
	d.members[k.Name] = gossipMember{Member: k, ok: true, verified: true}
	if !barred(k, later) {
		t.Errorf("k, claiming h's address while h announces it, is dialled there %v after a made-up claim of it proved h", later.Sub(now))
	}
	// Only unverified metadata says h moved: still barred.
	d.members[h.Name] = gossipMember{Member: Member{Name: h.Name, LinkAddr: a2}, ok: true}
	if !barred(k, later) {
		t.Errorf("k is dialled at h's former address %v after the claim, with only unverified metadata saying h moved", later.Sub(now))
	}
	// h's verified signed metadata names its new address: k is dialled
	// at the address it took, and h at its new one.
	h.LinkAddr = a2
	d.members[h.Name] = gossipMember{Member: h, ok: true, verified: true}
	if barred(k, later) {
		t.Errorf("k, at h's former address, is not dialled there %v after a made-up claim of it proved h, h announcing its new address in signed metadata", later.Sub(now))
	}
	if barred(h, later) {
		t.Error("h is not dialled at its new address")
	}
}
