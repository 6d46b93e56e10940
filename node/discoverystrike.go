package node

import "time"

// Strikes: failed dials to a member at addresses its own verified signed
// gossip metadata named and that never proved its certificate. They count
// against the member across links that prove it elsewhere, where the
// member's count of failed dials at unproven addresses (d.unproven) ends
// at such a link (proveLocked): a certificate holder that named a third
// party's address, let every node fail there twice, proved itself at its
// real address and named the next one had every node send handshakes to
// every address it named. Addresses others forged for the member (unsigned
// gossip, another key) earn no strike, so a forger cannot keep an honest
// member from being dialled at a new address; their dials count in
// d.unproven only, as before.
//
// After unprovenDials strikes the member is not dialled at addresses that
// never proved it for signedBan(strikes) from the last (1 minute doubling
// to the hour); an address that proved it stays dialled. A link proving
// the member at an address takes back the strikes that address earned
// (its dials failed, but the address is the member's: an honest router
// whose new address was silent for a dial or two, restarting or behind a
// new NAT binding), so honest moves do not add up. A member's strikes are
// forgotten strikeForget after its ban ended (or after its last strike,
// below unprovenDials) with no strike since.
const (
	strikeForget = time.Hour
	// strikeAddrs is how many of a member's struck addresses keep their
	// strikes refundable: a member naming more addresses in a row that
	// fail keeps the strikes of the older ones for good.
	strikeAddrs = 4
	maxStrikes  = maxMembers
)

type memberStrikes struct {
	n     int       // strikes not taken back
	last  time.Time // the last strike
	until time.Time // end of the ban (zero below unprovenDials)
	addrs []strikeAddr
}

type strikeAddr struct {
	addr string
	n    int
}

// forgetAt is when s is forgotten absent another strike.
func (s *memberStrikes) forgetAt() time.Time {
	end := s.last
	if s.until.After(end) {
		end = s.until
	}
	return end.Add(strikeForget)
}

// strikeLocked counts a silent failed dial to member at addr, an address
// that never proved it, when the member's verified signed metadata names
// addr (signedAddrLocked) or named it when the dial began (signed): a
// member that names its real address again while dials to a third
// party's run does not escape the strike. d.mu is held.
func (d *discovery) strikeLocked(member, addr string, signed bool, now time.Time) {
	if !signed && !d.signedAddrLocked(member, addr) {
		return
	}
	if d.strikes == nil {
		d.strikes = map[string]*memberStrikes{}
	}
	s := d.strikes[member]
	if s != nil && !now.Before(s.forgetAt()) {
		s = nil
	}
	if s == nil {
		if len(d.strikes) >= maxStrikes && !d.forgetStrikesLocked(now) {
			return
		}
		s = &memberStrikes{}
		d.strikes[member] = s
	}
	s.n++
	s.last = now
	if s.n >= unprovenDials {
		s.until = now.Add(signedBan(s.n))
	}
	for i := range s.addrs {
		if s.addrs[i].addr == addr {
			s.addrs[i].n++
			return
		}
	}
	if len(s.addrs) >= strikeAddrs {
		s.addrs = append(s.addrs[:0], s.addrs[1:]...)
	}
	s.addrs = append(s.addrs, strikeAddr{addr: addr, n: 1})
}

// unstrikeLocked takes back the strikes addr earned member, now that a
// handshake there proved it (proveLocked). d.mu is held.
func (d *discovery) unstrikeLocked(member, addr string) {
	s := d.strikes[member]
	if s == nil {
		return
	}
	for i, a := range s.addrs {
		if a.addr != addr {
			continue
		}
		s.n -= a.n
		s.addrs = append(s.addrs[:i], s.addrs[i+1:]...)
		if s.n < unprovenDials {
			s.until = time.Time{}
		}
		if s.n <= 0 {
			delete(d.strikes, member)
		}
		return
	}
}

// strikeBanLocked is when member's strikes stop barring dials of it at
// addresses that never proved it (zero: they do not). d.mu is held.
func (d *discovery) strikeBanLocked(member string, now time.Time) time.Time {
	s := d.strikes[member]
	if s == nil || !now.Before(s.forgetAt()) {
		return time.Time{}
	}
	return s.until
}

// forgetStrikesLocked deletes one member's strikes that are forgotten;
// false when none is. d.mu is held.
func (d *discovery) forgetStrikesLocked(now time.Time) bool {
	for m, s := range d.strikes {
		if !now.Before(s.forgetAt()) {
			delete(d.strikes, m)
			return true
		}
	}
	return false
}
