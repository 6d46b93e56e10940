package node

import (
	"fmt"
	"net/netip"
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
	case ap.Port() == 0, a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%w: %q is no node's address", errLinkAddr, s)
	}
	return nil
}
