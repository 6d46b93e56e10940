package node

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A silent address that a member's verified signed gossip metadata names
// (a router briefly cut off, restarting, or whose link listener was not
// up yet) is banned for signedBanMin after unprovenDials failed dials,
// doubling with each failed dial after that, up to unprovenBan; so is a
// member whose metadata this node verifies only after the dials failed
// (a new router whose certificate it learns once the router links to any
// node). Before, each was banned for unprovenBan (an hour), as an
// address named in unsigned gossip still is, and so is a member without
// signed metadata naming the signed member's address. In a mesh without
// a CA signed gossip counts for nothing.
func TestSilentAddressNamedInSignedGossipIsBannedBriefly(t *testing.T) {
	signed := Member{Name: "signed", LinkAddr: "127.0.0.1:1"}
	unsigned := Member{Name: "unsigned", LinkAddr: "127.0.0.1:2"}
	later := Member{Name: "later", LinkAddr: "127.0.0.1:3"}
	fake := Member{Name: "fake", LinkAddr: signed.LinkAddr} // names the signed member's address, unsigned
	d := &discovery{backoff: map[string]*addrBackoff{}, proven: map[string]string{}, unproven: map[string]*addrBackoff{}, vouch: true,
		members: map[string]gossipMember{
			signed.Name:   {Member: signed, ok: true, verified: true},
			unsigned.Name: {Member: unsigned, ok: true},
			later.Name:    {Member: later, ok: true},
			fake.Name:     {Member: fake, ok: true},
		}}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for range unprovenDials {
		for _, m := range []Member{signed, unsigned, later} {
			d.dialFailedLocked(m, fmt.Errorf("dial %s: %w", m.LinkAddr, context.DeadlineExceeded), now)
		}
	}
	barred := func(m Member, at time.Time) bool {
		return !d.mayDialLocked(m.Name, m.LinkAddr, at) || d.memberBannedLocked(m.Name, m.LinkAddr, at)
	}
	for _, m := range []Member{signed, unsigned, later} {
		if !barred(m, now) {
			t.Errorf("%s is dialled at once after %d silent dials", m.Name, unprovenDials)
		}
	}
	soon := now.Add(signedBanMin + 5*time.Second)
	if barred(signed, soon) {
		t.Errorf("a member whose signed metadata names its silent address is not dialled %v after %d failed dials", soon.Sub(now), unprovenDials)
	}
	// Without a CA (Insecure) any key signs for any name: signed gossip
	// vouches for nothing.
	d.vouch = false
	if !barred(signed, soon) {
		t.Errorf("in a mesh without a CA, a member whose signed metadata names its silent address is dialled %v after %d failed dials", soon.Sub(now), unprovenDials)
	}
	d.vouch = true
	for _, m := range []Member{unsigned, later} {
		if !barred(m, soon) || !barred(m, now.Add(unprovenBan-time.Minute)) {
			t.Errorf("%s, named in unsigned gossip, is dialled again within %v of %d silent dials", m.Name, unprovenBan, unprovenDials)
		}
	}
	// A member without signed metadata that names the signed member's
	// address gets the ban of unsigned gossip there.
	for range unprovenDials {
		d.dialFailedLocked(fake, fmt.Errorf("dial %s: %w", fake.LinkAddr, context.DeadlineExceeded), soon)
	}
	if !barred(fake, soon.Add(signedBanMin+5*time.Second)) || !barred(fake, soon.Add(unprovenBan-time.Minute)) {
		t.Errorf("%s, naming %s's address in unsigned gossip, is dialled again within %v of %d silent dials", fake.Name, signed.Name, unprovenBan, unprovenDials)
	}
	// later's metadata is verified now: its ban shortens to signedBan.
	gm := d.members[later.Name]
	gm.verified = true
	d.members[later.Name] = gm
	if barred(later, soon) {
		t.Errorf("a member whose signed metadata was verified after its dials failed is not dialled %v after them", soon.Sub(now))
	}
	// Each further failure doubles the ban, up to unprovenBan.
	at := soon
	for i, want := range []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, unprovenBan} {
		d.failedUnprovenLocked(signed.Name, at)
		if !d.memberBannedLocked(signed.Name, signed.LinkAddr, at.Add(want-time.Second)) || d.memberBannedLocked(signed.Name, signed.LinkAddr, at.Add(want+time.Second)) {
			t.Errorf("after %d failed dials the signed member is not banned for %v", unprovenDials+1+i, want)
		}
		at = at.Add(want + time.Second)
	}
}
