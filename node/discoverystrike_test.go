package node

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// strikeTestDiscovery is a discovery with a CA (vouch) whose only member
// is name, its verified signed metadata naming addr.
func strikeTestDiscovery(name, addr string) *discovery {
	d := &discovery{backoff: map[string]*addrBackoff{}, proven: map[string]string{}, unproven: map[string]*addrBackoff{}, hosts: map[string]*hostBudget{}, vouch: true,
		members: map[string]gossipMember{}}
	d.signLocked(name, addr)
	return d
}

// signLocked makes name's verified signed metadata name addr.
func (d *discovery) signLocked(name, addr string) {
	d.members[name] = gossipMember{Member: Member{Name: name, LinkAddr: addr}, ok: true, verified: true}
}

// dialableAt is the first whole second from at on when d dials name at
// addr, or the zero time if not within two hours.
func (d *discovery) dialableAt(name, addr string, at time.Time) time.Time {
	for t := at; t.Before(at.Add(2 * time.Hour)); t = t.Add(time.Second) {
		if d.mayDialLocked(name, addr, t) && !d.memberBannedLocked(name, addr, t) {
			return t
		}
	}
	return time.Time{}
}

func silentDial(d *discovery, name, addr string, at time.Time) {
	d.dialFailedLocked(Member{Name: name, LinkAddr: addr}, fmt.Errorf("dial %s: %w", addr, context.DeadlineExceeded), at)
}

// An honest router that moves (a restart on a new IP, a new NAT binding)
// and whose new address, named in its verified signed metadata, is
// silent for a dial or two (its link listener not up yet) is dialled
// there again signedBanMin after the second silent dial, and once a link
// there proves it, those dials no longer count against it: five such
// moves in a row each wait the same minute, not a ban doubling with each
// move. A move to an address that never answers (a binding gone before
// anyone linked) followed by one to an address that answers at its
// second dial is linked 3 minutes after the first silent dial. Its
// proven address stays dialled throughout.
func TestHonestMemberThatMovesIsDialledAfterSilentDials(t *testing.T) {
	const h, home = "h", "127.0.0.1:1000"
	d := strikeTestDiscovery(h, home)
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	d.proveLocked(home, h, now)
	at := now
	for i := range 5 {
		addr := fmt.Sprintf("127.0.1.%d:1000", i+1)
		d.signLocked(h, addr)
		silentDial(d, h, addr, at)
		silentDial(d, h, addr, at.Add(time.Second))
		if d.memberBannedLocked(h, home, at.Add(time.Second)) {
			t.Errorf("move %d: %s is banned at %s, the address that proved it", i+1, h, home)
		}
		next := d.dialableAt(h, addr, at.Add(time.Second))
		if wait := next.Sub(at.Add(time.Second)); next.IsZero() || wait > signedBanMin {
			t.Fatalf("move %d: %s is not dialled at its new address %s within %v of its second silent dial (%v)", i+1, h, addr, signedBanMin, wait)
		}
		d.proveLocked(addr, h, next) // the dial there links: its listener is up
		at = next.Add(10 * time.Minute)
	}

	// A new address that never answers, then one that answers at the
	// second dial.
	dead, works := "127.0.2.1:1000", "127.0.2.2:1000"
	d.signLocked(h, dead)
	silentDial(d, h, dead, at)
	silentDial(d, h, dead, at.Add(time.Second))
	moved := at.Add(10 * time.Second)
	d.signLocked(h, works)
	first := d.dialableAt(h, works, moved)
	if first.IsZero() {
		t.Fatalf("%s is not dialled at %s within two hours of its move there", h, works)
	}
	silentDial(d, h, works, first)
	second := d.dialableAt(h, works, first)
	if second.IsZero() || second.Sub(at) > 4*time.Minute {
		t.Fatalf("%s, moved to %s after %s never answered, is dialled there again only %v after its first silent dial", h, works, dead, second.Sub(at))
	}
	t.Logf("moved from a dead address to one that answers at its second dial: dialled there %v and %v after the first silent dial", first.Sub(at), second.Sub(at))
	d.proveLocked(works, h, second)
	if d.memberBannedLocked(h, works, second) {
		t.Errorf("%s is banned at %s, the address that proved it", h, works)
	}
}

// A member that names addresses in its verified signed metadata that
// never prove it (third parties'), proving itself at its real address
// between them, is not dialled at the next one while the ban its strikes
// earned runs: the proof at its real address does not end the ban, and
// each further strike doubles it. A forger's addresses for a member
// (another member's claim, or unsigned) earn it no strike: a link
// proving the member still ends their ban.
func TestSignedMemberRotatingAddressesStaysBanned(t *testing.T) {
	const m, real = "m", "127.0.0.1:1000"
	d := strikeTestDiscovery(m, real)
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	d.proveLocked(real, m, now)
	victim := func(i int) string { return fmt.Sprintf("127.0.3.%d:1000", i) }
	d.signLocked(m, victim(0))
	silentDial(d, m, victim(0), now)
	silentDial(d, m, victim(0), now.Add(time.Second))
	d.signLocked(m, real)
	d.proveLocked(real, m, now.Add(2*time.Second))
	d.signLocked(m, victim(1))
	if !d.memberBannedLocked(m, victim(1), now.Add(3*time.Second)) {
		t.Fatalf("%s, after %d silent dials at an address its signed metadata named and a proof at %s, is dialled at the next address it names", m, unprovenDials, real)
	}
	if d.memberBannedLocked(m, real, now.Add(3*time.Second)) {
		t.Errorf("%s is banned at %s, the address that proved it", m, real)
	}
	// The ban ends signedBanMin after the second strike, then doubles.
	at := now.Add(time.Second)
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, unprovenBan, unprovenBan} {
		addr := victim(i + 1)
		d.signLocked(m, addr)
		if !d.memberBannedLocked(m, addr, at.Add(want-time.Second)) || d.memberBannedLocked(m, addr, at.Add(want+time.Second)) {
			t.Fatalf("after %d strikes, %s is not banned at new addresses for %v", unprovenDials+i, m, want)
		}
		at = at.Add(want + time.Second)
		silentDial(d, m, addr, at)
		d.signLocked(m, real)
		d.proveLocked(real, m, at)
	}
	// An hour after its last ban ended with no strike since, the member
	// starts afresh.
	fresh := at.Add(unprovenBan + strikeForget + time.Second)
	if d.memberBannedLocked(m, victim(20), fresh) {
		t.Errorf("%s is still banned at new addresses %v after its last ban ended", m, strikeForget)
	}

	// Forged addresses: b's signed metadata names its real address; dials
	// to an address others named for b fail, then a link proves b.
	const b, breal, forged = "b", "127.0.0.2:1000", "127.0.0.2:9"
	d.signLocked(b, breal)
	d.proveLocked(breal, b, now)
	for range unprovenDials {
		silentDial(d, b, forged, now)
	}
	if !d.memberBannedLocked(b, forged, now) {
		t.Errorf("b is still dialled at unproven addresses after %d failed dials there", unprovenDials)
	}
	d.proveLocked(breal, b, now)
	if d.memberBannedLocked(b, forged, now) {
		t.Error("failed dials at an address b's signed metadata does not name are held against b after a link proved it")
	}
}

// dialFailedLocked is dialFailedSignedLocked for a dial begun while m's
// verified signed metadata named no other address than it names now.
func (d *discovery) dialFailedLocked(m Member, err error, now time.Time) {
	d.dialFailedSignedLocked(m, err, false, now)
}

// claimFailedLocked is claimFailedSignedLocked likewise.
func (d *discovery) claimFailedLocked(m Member, holder string, now time.Time) {
	d.claimFailedSignedLocked(m, holder, false, now)
}
