package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// A member with the gossip key (and a certificate of its own) gossips
// made-up names at an honest node b's live link address, in unsigned
// metadata or signed with its own key (unverifiable: no certificate
// names them). Node a dials the address for one of them and the
// handshake proves b's certificate: the claim is false. The penalty is
// the made-up names': a dials b under its own name once gossip announces
// it, and the address no more for made-up names once one was found
// false (dials in flight together aside). Before, the mismatch backed
// b's address off for banTime (10 minutes) for every name, b's own too:
// one forged gossip message kept every node that dialled it from
// dialling b for 10 minutes, and could be repeated.
func TestForgedNameAtHonestAddressDoesNotBarItsHolder(t *testing.T) {
	for _, signed := range []bool{false, true} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) {
			key := bytes.Repeat([]byte{9}, 32)
			c := newCluster(t, true)
			c.tweak = func(cfg *Config) {
				cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key}
			}
			a := c.add("a")
			// h1..h3 link to a and each other, so that a is not cut off
			// from most members it knows (islandPickLocked would dial a
			// barred member).
			c.tweak = func(cfg *Config) {
				cfg.Discovery = DiscoveryConfig{BindAddr: "127.0.0.1:0", Key: key, Join: []string{a.Status().GossipAddr},
					LinkPolicy: func(m Member) bool { return m.Name == "a" || strings.HasPrefix(m.Name, "h") }}
				if cfg.Name == "b" {
					// b dials no one (a link between a and b is a's
					// dial), and joins a's gossip later.
					cfg.Discovery.Join, cfg.Discovery.LinkPolicy = nil, func(Member) bool { return false }
				}
			}
			for _, h := range []string{"h1", "h2", "h3"} {
				c.add(h)
			}
			b := c.add("b")
			c.tweak = nil
			waitFor(t, "a reaching h1, h2 and h3", patience, func() bool {
				for _, h := range []string{"h1", "h2", "h3"} {
					if p, ok := a.Peer(h); !ok || !p.Reachable {
						return false
					}
				}
				return true
			})
			forger, err := c.ca.Issue("f", 0)
			if err != nil {
				t.Fatal(err)
			}
			addr := b.Addr().String()
			names := []string{"zz", "zy"}
			for _, name := range names {
				meta, _ := json.Marshal(memberMeta{Link: addr, Mesh: "test"})
				if signed {
					meta = signMeta(forger.Key, "test", name, meta)
				}
				fakeMemberMeta(t, name, key, meta, a.Status().GossipAddr)
			}
			refused := func() int {
				var m dto.Metric
				if err := a.metrics.linkRefused.Write(&m); err != nil {
					t.Fatal(err)
				}
				return int(m.GetCounter().GetValue())
			}
			waitFor(t, "a dialling a made-up name at b's address and finding b", patience, func() bool { return refused() > 0 })
			waitFor(t, "a closing the link that proved b for a made-up name", patience, func() bool { return a.link("b") == nil })

			// b joins a's gossip: a learns b's name at that address.
			waitFor(t, "b joining a's gossip", patience, func() bool {
				_, err := b.disco.ml.Join([]string{a.Status().GossipAddr})
				return err == nil // a's gossip guard may drop a slow stream: b tries again
			})
			waitFor(t, "a dialling b under its own name after a made-up name's dial found b at its address", patience, func() bool {
				l := a.link("b")
				return l != nil && l.Outbound() && l.Peer() == "b"
			})
			// Dials in flight together may each find b; none comes after.
			n := refused()
			if n > len(names) {
				t.Errorf("a dialled b's address %d times for %d made-up names claiming it", n, len(names))
			}
			t.Logf("a linked to b; it dialled b's address %d times for made-up names", n)
			for _, name := range names {
				if a.link(name) != nil {
					t.Errorf("a holds a link to made-up %s", name)
				}
			}
		})
	}
}

// A dial of a member's claimed address that proves another node's
// certificate bars the address for every name but that node's, counts
// against the claiming name wherever it moves, and neither bars nor
// lists as failed the node whose certificate the address proved.
func TestClaimOfAnotherNodesAddressPenalisesTheClaim(t *testing.T) {
	b := Member{Name: "b", LinkAddr: "127.0.0.1:1"}
	c := Member{Name: "c", LinkAddr: "127.0.0.1:2"}
	d := &discovery{backoff: map[string]*addrBackoff{}, proven: map[string]string{}, unproven: map[string]*addrBackoff{}, vouch: true,
		members: map[string]gossipMember{b.Name: {Member: b, ok: true}, c.Name: {Member: c, ok: true}}}
	d.mu.Lock()
	defer d.mu.Unlock()
	barred := func(m Member, at time.Time) bool {
		return !d.mayDialLocked(m.Name, m.LinkAddr, at) || d.memberBannedLocked(m.Name, m.LinkAddr, at)
	}
	now := time.Now()
	d.claimFailedLocked(Member{Name: "zz", LinkAddr: b.LinkAddr}, b.Name, now)
	if barred(b, now) {
		t.Error("b is not dialled at its address after a made-up name's claim of it proved b there")
	}
	if bo := d.backoff[b.LinkAddr]; bo == nil || bo.holder != b.Name {
		t.Errorf("b's address after the claim: %+v, want b as its holder (not listed as failed)", bo)
	}
	for _, name := range []string{"zz", "zy"} {
		if !barred(Member{Name: name, LinkAddr: b.LinkAddr}, now.Add(banTime-time.Minute)) {
			t.Errorf("%s is dialled at b's address within %v of a claim of it proving b", name, banTime)
		}
	}
	// zz moves to c's address: its second false claim bans it anywhere.
	d.claimFailedLocked(Member{Name: "zz", LinkAddr: c.LinkAddr}, c.Name, now)
	if !barred(Member{Name: "zz", LinkAddr: "127.0.0.1:3"}, now.Add(unprovenBan-time.Minute)) {
		t.Errorf("zz is dialled within %v of %d false claims", unprovenBan, unprovenDials)
	}
	if barred(c, now) {
		t.Error("c is not dialled at its address after zz claimed it")
	}
	// A dial of b's address that fails ends b's exemption: the address
	// backs off for every name.
	d.dialFailedLocked(b, context.DeadlineExceeded, now)
	if !barred(b, now) {
		t.Error("b is dialled at once after its own dial failed")
	}
}
