package node

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"
)

// firstUnbarred is how long after from a dial of member at addr is first
// allowed by its host's budget, scanning in steps of a second up to two
// hours (-1 when it stays barred).
func firstUnbarred(d *discovery, member, addr string, from time.Time) time.Duration {
	for w := time.Duration(0); w <= 2*time.Hour; w += time.Second {
		if !d.hostBarredLocked(member, addr, from.Add(w)) {
			return w
		}
	}
	return -1
}

// failHostDial is a dial of member at addr, counted against its host, that
// nothing answered.
func failHostDial(t *testing.T, d *discovery, member, addr string, now time.Time) {
	t.Helper()
	if counted, ok := d.hostDialLocked(member, addr, now); !counted || !ok {
		t.Fatalf("dial of %s at %s: counted %v, ok %v", member, addr, counted, ok)
	}
	d.hostDoneLocked(addr, true, now)
}

// TestAttackMadeUpMembersKeepHonestHostBanned: a stranger (no certificate,
// no gossip key when gossip is not encrypted) names two made-up members at
// silent ports of a host before honest nodes there join. The dials fail
// and the host is banned for the hour of a host where no certificate was
// ever seen. Then honest h1 links from the host (a handshake there proves
// its certificate, or it links from a port it does not announce, as
// behind a NAT). The host is a host of the mesh now: h2, a new node at
// another port whose signed metadata is not verified yet (a mesh with a
// CA, before h2's certificate reached this node) or vouches for nothing
// (development mode), must be dialled within the minute of a known host's
// ban, not at the end of the stranger's hour. Before, the host was marked
// known but kept its hour.
func TestAttackMadeUpMembersKeepHonestHostBanned(t *testing.T) {
	const v = "192.0.2.7"
	for _, tc := range []struct {
		name  string
		vouch bool
		proof bool // h1's handshake proved it at its announced address; else it linked from another port
	}{
		{"ca/proof", true, true},
		{"ca/linked", true, false},
		{"dev/proof", false, true},
		{"dev/linked", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &discovery{proven: map[string]string{}, hosts: map[string]*hostBudget{}, members: map[string]gossipMember{}, vouch: tc.vouch}
			now := time.Unix(1_800_000_000, 0)
			failHostDial(t, d, "ghost1", v+":1", now)
			failHostDial(t, d, "ghost2", v+":2", now)
			if w := firstUnbarred(d, "h2", v+":7001", now); w < unprovenBan {
				t.Fatalf("a host that never proved a certificate is dialled again after %v, want %v", w, unprovenBan)
			}
			now = now.Add(10 * time.Second)
			if tc.proof {
				d.proveLocked(v+":7000", "h1", now)
			} else {
				d.noteHostLocked(v+":40123", now)
			}
			if !tc.vouch {
				d.members["h2"] = gossipMember{Member: Member{Name: "h2", LinkAddr: v + ":7001"}, ok: true, verified: true}
			}
			w := firstUnbarred(d, "h2", v+":7001", now)
			t.Logf("h2 first dialable %v after h1 linked from its host", w)
			if w < 0 || w > signedBanMin {
				t.Fatalf("h2 dialable %v after h1 linked from its host, want at most %v", w, signedBanMin)
			}
			if d.hostHardBarLocked("h2", v+":7001", now) {
				t.Fatal("a host a node linked from is barred hard")
			}
			// h1's link lives on: each policy step notes it again, which
			// neither shortens nor restarts the host's bans.
			now = now.Add(w)
			failHostDial(t, d, "ghost3", v+":3", now)
			failHostDial(t, d, "ghost4", v+":4", now)
			for i := 0; i < 3; i++ {
				if tc.proof {
					d.proveLocked(v+":7000", "h1", now.Add(time.Duration(i)*time.Second))
				} else {
					d.noteHostLocked(v+":40123", now.Add(time.Duration(i)*time.Second))
				}
			}
			if w := firstUnbarred(d, "h2", v+":7001", now); w != signedBan(2) {
				t.Fatalf("after two more failed dials the host is dialled again after %v, want %v", w, signedBan(2))
			}
		})
	}
}

// TestAttackMadeUpMemberEscalatesKnownHost: on a host of the mesh, one
// made-up member failing at each ban's end doubles the ban up to the
// hour. A node whose certificate is proven there for the first time (one
// that joins or restarts there and links) restarts the count and ends the
// ban within signedBanMin; the same node proven again, at any port of the
// host, does not: a certificate holder on a shared address lifts that
// address's bans once per name, not whenever it likes.
func TestAttackMadeUpMemberEscalatesKnownHost(t *testing.T) {
	const v = "192.0.2.9"
	d := &discovery{proven: map[string]string{v + ":1": "x"}, hosts: map[string]*hostBudget{}, members: map[string]gossipMember{}}
	now := time.Unix(1_800_000_000, 0)
	escalate := func() []time.Duration {
		var bans []time.Duration
		for i := 0; i < 10; i++ {
			now = now.Add(firstUnbarred(d, "g", v+":2", now))
			failHostDial(t, d, "g", v+":2", now)
			if h := d.hosts[v]; now.Before(h.until) {
				bans = append(bans, h.until.Sub(now))
			}
		}
		return bans
	}
	bans := escalate()
	t.Logf("one made-up member failing at each ban's end: bans %v", bans)
	if last := bans[len(bans)-1]; last != unprovenBan {
		t.Fatalf("last ban %v, want %v", last, unprovenBan)
	}
	d.proveLocked(v+":7000", "h3", now)
	w := firstUnbarred(d, "h4", v+":7001", now)
	t.Logf("after a new node's certificate is proven at the host: next dial %v later", w)
	if w > signedBanMin {
		t.Fatalf("a new node proven at the host leaves its ban at %v, want at most %v", w, signedBanMin)
	}
	now = now.Add(w)
	failHostDial(t, d, "g", v+":2", now)
	failHostDial(t, d, "g", v+":3", now)
	if w := firstUnbarred(d, "h4", v+":7001", now); w != signedBanMin {
		t.Fatalf("after the proof, two failed dials ban the host %v, want %v", w, signedBanMin)
	}
	escalate()
	until := d.hosts[v].until
	d.proveLocked(v+":7100", "h3", now) // h3 again, at another port
	d.proveLocked(v+":7000", "h3", now)
	d.noteHostLocked(v+":50000", now)
	if got := d.hosts[v].until; !got.Equal(until) {
		t.Fatalf("h3 proven again moved the host's ban from %v to %v", until.Sub(now), got.Sub(now))
	}
}

// joinerLinks adds node j to c, joining through d, and waits up to within
// for j to link to d, a or b.
func joinerLinks(t *testing.T, c *cluster, d *Node, within time.Duration) *Node {
	t.Helper()
	var seed string
	c.tweak = gossipJoining(&seed)
	seed = d.Status().GossipAddr
	j := c.add("j")
	c.tweak = nil
	start := time.Now()
	waitFor(t, "j to link to an honest node", within, func() bool {
		return slices.ContainsFunc(j.Links(), func(l LinkInfo) bool { return slices.Contains([]string{"d", "a", "b"}, l.Peer) })
	})
	t.Logf("j linked to %v %v after its join", j.Links()[0].Peer, time.Since(start).Round(time.Millisecond))
	return j
}

// TestAttackMadeUpMembersOnHonestHostKeepJoinerOut: a stranger with no
// certificate (no gossip key needed) pushes d made-up members whose link
// address is the honest nodes' own host (127.0.0.1, at port 9 where
// nothing listens), then a new node j joins the mesh through d. j cannot
// verify d's, a's or b's signed metadata before it links to one of them,
// and its dials of made-up members fail at their host. j must still link
// to an honest node and reach d, a and b. Before, j's two failed dials
// banned the host for the hour of a host where no certificate was ever
// seen, hard, so that not even its dial as a node cut off from everyone
// went there: j linked to none of them.
func TestAttackMadeUpMembersOnHonestHostKeepJoinerOut(t *testing.T) {
	c, honest := gossipNodes(t, "d", "a", "b")
	d := honest[0]
	meta, _ := json.Marshal(memberMeta{Link: "127.0.0.1:9", Mesh: "test"})
	for p := range 5 {
		pushMadeUp(t, d, meta, p*1024, 1024)
	}

	j := joinerLinks(t, c, d, time.Minute)
	for _, n := range honest {
		waitFor(t, "j to verify "+n.cfg.Name+"'s metadata", 30*time.Second, func() bool {
			j.disco.mu.Lock()
			defer j.disco.mu.Unlock()
			gm := j.disco.members[n.cfg.Name]
			return gm.verified && gm.ok
		})
	}
}

// TestAttackMadeUpMembersSortFirstKeepJoinerOut is
// TestAttackMadeUpMembersOnHonestHostKeepJoinerOut with 1,024 made-up
// members at as many silent ports of the honest nodes' host, named to
// sort before them. j, cut off from everyone, must link to an honest node
// within 20 s. Before, its dial as a node cut off from everyone went to
// the made-up member whose bar ended first, by name among equals: every
// 30 s a made-up one, and j linked to none in 5 minutes.
func TestAttackMadeUpMembersSortFirstKeepJoinerOut(t *testing.T) {
	c, honest := gossipNodes(t, "d", "a", "b")
	d := honest[0]
	pushMadeUpEach(t, d, 0, 1024, func(i int) (string, []byte) {
		meta, _ := json.Marshal(memberMeta{Link: fmt.Sprintf("127.0.0.1:%d", 40000+i), Mesh: "test"})
		return fmt.Sprintf("0000-%05d", i), meta
	})

	joinerLinks(t, c, d, 20*time.Second)
}
