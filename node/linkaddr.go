package node

import (
	"fmt"
	"net/netip"
	"time"
)

// errLinkAddr wraps errBadMeta: a member's gossip metadata names a link
// address that is not an IP:port literal in its one canonical spelling.
var errLinkAddr = fmt.Errorf("%w: link address is not a canonical IP:port", errBadMeta)

// checkLinkAddr reports why s may not be a member's link address on a
// transport of IP addresses (ipLinks), or nil. Only the spelling
// netip.AddrPort.String gives is taken: a dial's back-off is kept per
// address, and before, one address written many ways ("127.0.0.2:0005353",
// "[::ffff:127.0.0.2]:5353", a host name) was as many addresses, each
// dialled afresh; a host name also made every node look up a name anyone
// without the gossip key could choose. A zone is the sender's own
// interface, meaningless at the receiver; an unspecified, multicast or
// broadcast address or port 0 is no node's. Honest nodes announce their
// transport's IP address, unmapped, with no zone (linkAddr), so none of
// these refuses one. Static links (Config.StaticLinks, Link) are the
// operator's and may still name hosts.
func checkLinkAddr(s string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return fmt.Errorf("%w: %q", errLinkAddr, s)
	}
	a := ap.Addr()
	switch {
	case a.Zone() != "":
		return fmt.Errorf("%w: %q has a zone", errLinkAddr, s)
	case a.Is4In6():
		return fmt.Errorf("%w: %q is an IPv4-mapped IPv6 address", errLinkAddr, s)
	case ap.String() != s:
		return fmt.Errorf("%w: %q is spelled %q", errLinkAddr, s, ap.String())
	case ap.Port() == 0, noNodesIP(a):
		return fmt.Errorf("%w: %q is no node's address", errLinkAddr, s)
	}
	return nil
}

// noNodesIP says whether a can be no node's address seen from elsewhere:
// unspecified, multicast or the IPv4 broadcast address.
func noNodesIP(a netip.Addr) bool {
	return a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// hostKey is the host of link address addr whose dials share one budget
// (hostBudget): its IPv4 address, or the /64 of its IPv6 address. One
// machine may hold a whole /64 (a routed /64, SLAAC privacy addresses):
// keyed by full address, a stranger could name one victim at as many
// addresses as it likes, and each dial to an unused one also makes the
// victim's router solicit neighbours. Hosts that share a /64 (a cloud
// subnet, a Kubernetes pod range) so share one budget; their own nodes,
// once seen, lift it (lift). An address that is no IP:port (an in-memory
// transport's node name) is its own host.
func hostKey(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// hostBudget bounds the dials a node makes to addresses of one host
// (hostKey) where no handshake proved a certificate: the bound per
// address and per member name alone let anyone without the gossip key
// invent members, for free, at many ports of a victim, and every node
// dialled each of them, a QUIC handshake of about ten packets at every
// dial. A host gets unprovenDials such dials that fail, then one per
// unprovenBan; a host where a handshake proved some node's certificate
// (or from which a node linked to this one) is banned for signedBan
// instead, doubling from signedBanMin, so that a node starting there
// beside honest nodes waits a minute, not an hour. A host that becomes
// known, or where a node's certificate is proven for the first time, is
// lifted (lift): its count restarts and its running ban ends within
// signedBanMin, so that made-up members named there before honest nodes
// joined, or failing at each ban's end, do not keep it banned for long.
type hostBudget struct {
	fails   int       // failed dials to unproven addresses of the host since it was last lifted
	pending int       // such dials in progress
	until   time.Time // no such dial before
	// known: a handshake at an address of the host proved a certificate,
	// or a node linked to this one from it, or Join names it
	// (knownHostLocked, noteHostLocked, provenHostLocked, joinedHostsLocked).
	known bool
}

// maxHosts bounds the host table; when it is full of running bans, no
// unproven address of a new host is dialled.
const maxHosts = maxBackoffs

// hostCountedLocked reports whether a dial of member at addr counts
// against addr's host budget: no handshake there proved any node's
// certificate, and member's verified signed metadata does not name addr
// (a certificate holder vouches for it; its own bans bound its dials,
// banEndLocked). d.mu is held.
func (d *discovery) hostCountedLocked(member, addr string) bool {
	_, proven := d.proven[addr]
	return !proven && !d.signedAddrLocked(member, addr)
}

// hostBarLocked reports whether addr's host budget bars a dial of member
// at addr now, and whether the bar is hard: the host never proved a
// certificate, and not even a node cut off from most members
// (islandPickLocked) dials it. A host's dials may not outnumber what is
// left of its budget while they run. d.mu is held.
func (d *discovery) hostBarLocked(member, addr string, now time.Time) (barred, hard bool) {
	if !d.hostCountedLocked(member, addr) {
		return false, false
	}
	h := d.hosts[hostKey(addr)]
	if h == nil {
		full := len(d.hosts) >= maxHosts // sweepHostsLocked frees ended bans
		return full, full
	}
	switch {
	case now.Before(h.until):
		barred = true
	case h.fails >= unprovenDials:
		barred = h.pending > 0 // one dial per ban
	default:
		barred = h.fails+h.pending >= unprovenDials
	}
	return barred, barred && !h.known
}

// hostBarredLocked reports whether addr's host budget bars a dial of
// member at addr now (hostBarLocked). d.mu is held.
func (d *discovery) hostBarredLocked(member, addr string, now time.Time) bool {
	barred, _ := d.hostBarLocked(member, addr, now)
	return barred
}

// hostHardBarLocked reports whether addr's host budget bars a dial of
// member at addr now, even one that overrides other bans (hostBarLocked).
// d.mu is held.
func (d *discovery) hostHardBarLocked(member, addr string, now time.Time) bool {
	_, hard := d.hostBarLocked(member, addr, now)
	return hard
}

// hostDialLocked records the start of a dial of member at addr, and
// reports whether it counts against the host's budget (then hostDoneLocked
// must follow); ok is false when the host table is full. d.mu is held.
func (d *discovery) hostDialLocked(member, addr string, now time.Time) (counted, ok bool) {
	if !d.hostCountedLocked(member, addr) {
		return false, true
	}
	key := hostKey(addr)
	h := d.hosts[key]
	if h == nil {
		if len(d.hosts) >= maxHosts && !d.evictHostLocked(now) {
			return false, false
		}
		h = &hostBudget{known: d.knownHostLocked(key)}
		d.hosts[key] = h
	}
	h.pending++
	return true, true
}

// hostDoneLocked ends a dial hostDialLocked counted; failed: it failed
// without an answer, at an address where no certificate was proven
// meanwhile. d.mu is held.
func (d *discovery) hostDoneLocked(addr string, failed bool, now time.Time) {
	key := hostKey(addr)
	h := d.hosts[key]
	if h == nil {
		return
	}
	h.pending = max(h.pending-1, 0)
	if _, proven := d.proven[addr]; !failed || proven {
		return
	}
	h.fails++
	if h.fails >= unprovenDials {
		ban := unprovenBan
		if h.known {
			ban = signedBan(h.fails)
		}
		h.until = now.Add(ban)
	}
}

// knownHostLocked reports whether a handshake at an address of host key
// proved a certificate (proven), or Join names it (joinedHostsLocked).
// d.mu is held.
func (d *discovery) knownHostLocked(key string) bool {
	if d.joinHosts[key] {
		return true
	}
	for a := range d.proven {
		if hostKey(a) == key {
			return true
		}
	}
	return false
}

// noteHostLocked marks the host of addr known at now: a handshake there
// proved a certificate, or a node linked to this one from it. A host
// that becomes known is lifted (lift): its bans so far were those of
// a host where no node of the mesh was seen, made-up members' at the
// hour, and would otherwise keep the next honest node there from being
// dialled for the rest of it. Noting a known host again (every policy
// step notes every link) changes nothing. d.mu is held.
func (d *discovery) noteHostLocked(addr string, now time.Time) {
	if h := d.hosts[hostKey(addr)]; h != nil && !h.known {
		h.known = true
		h.lift(now)
	}
}

// joinedHostsLocked records the hosts of addrs, the gossip addresses Join
// resolved to, as known (noteHostLocked): the operator names them as the
// mesh's, and a node joining through one of them dials that host's nodes,
// whose signed metadata it cannot verify before it links to one. Before, a
// stranger's made-up members at silent ports of the host a new node
// joined through (its own nodes' host: several nodes on one machine, or
// behind one NAT) failed twice and banned the host hard for the hour of a
// host where no certificate was ever seen, and the new node, dialling no
// node there, linked to none. d.mu is held.
func (d *discovery) joinedHostsLocked(addrs []string, now time.Time) {
	d.joinHosts = make(map[string]bool, len(addrs)) // at most maxJoinAddrs
	d.joinAddrs = make(map[string]bool, len(addrs))
	for _, a := range addrs {
		d.joinHosts[hostKey(a)] = true
		d.joinAddrs[a] = true
		d.noteHostLocked(a, now)
	}
}

// provenHostLocked is called by proveLocked before it records that a
// handshake at addr proved member's certificate, addr not having proved
// it before: if no other address of addr's host proved member either (a
// node that joins that host, or links to this one from it for the first
// time), the host is known and lifted (lift), so that made-up members
// failing at each ban's end cannot keep a host where honest nodes start
// banned for long. A node proven again on its host, at any port, lifts
// nothing: a certificate holder lifts the bans of its own host once per
// name, not whenever it reconnects. d.mu is held.
func (d *discovery) provenHostLocked(addr, member string, now time.Time) {
	key := hostKey(addr)
	h := d.hosts[key]
	if h == nil {
		return
	}
	for a, m := range d.proven {
		if m == member && hostKey(a) == key {
			return
		}
	}
	h.known = true
	h.lift(now)
}

// lift forgets h's failed dials and ends its running ban within
// signedBanMin of now, the ban of a host of the mesh after its first
// unprovenDials failures: the host's next unproven dials count afresh.
func (h *hostBudget) lift(now time.Time) {
	h.fails = 0
	if end := now.Add(signedBanMin); h.until.After(end) {
		h.until = end
	}
}

// sweepHostsLocked frees, when the host table is full, every entry with
// no dial running whose ban ended: those hosts get their budget afresh,
// and new hosts can be dialled. d.mu is held.
func (d *discovery) sweepHostsLocked(now time.Time) {
	if len(d.hosts) < maxHosts {
		return
	}
	for k, h := range d.hosts {
		if h.pending == 0 && !now.Before(h.until) {
			delete(d.hosts, k)
		}
	}
}

// evictHostLocked frees a host entry with no dial running whose ban
// ended; false when none has. d.mu is held.
func (d *discovery) evictHostLocked(now time.Time) bool {
	for k, h := range d.hosts {
		if h.pending == 0 && !now.Before(h.until) {
			delete(d.hosts, k)
			return true
		}
	}
	return false
}
