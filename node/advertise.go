package node

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// ErrAdvertiseAddr matches an *AdvertiseAddrError.
var ErrAdvertiseAddr = errors.New("bad advertised address")

// AdvertiseAddrError refuses an address a node is to announce
// (DiscoveryConfig.AdvertiseAddr, LinkAdvertiseAddr). It matches
// ErrAdvertiseAddr and ErrInvalidConfig.
type AdvertiseAddrError struct {
	Addr   string // the address as given
	Reason string // why it is refused
}

func (e *AdvertiseAddrError) Error() string {
	return fmt.Sprintf("%v: %q %s", ErrAdvertiseAddr, e.Addr, e.Reason)
}

func (e *AdvertiseAddrError) Is(target error) bool {
	return target == ErrAdvertiseAddr || target == ErrInvalidConfig
}

// ParseAdvertiseAddr checks an address a node is to announce to the
// other members and returns it with an IPv4 address unmapped: an IP
// literal, since memberlist parses the gossip address as one and members
// refuse a link address that is not one (checkLinkAddr); not unspecified,
// multicast or broadcast, and with no zone, since such an address reaches
// no node from elsewhere; a port from 1 to 65535. Otherwise it returns
// an *AdvertiseAddrError.
func ParseAdvertiseAddr(s string) (netip.AddrPort, error) {
	bad := func(format string, args ...any) (netip.AddrPort, error) {
		return netip.AddrPort{}, &AdvertiseAddrError{Addr: s, Reason: fmt.Sprintf(format, args...)}
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return bad("is not IP:PORT")
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return bad("does not start with an IP address (host names are not announced: give the IP the other members reach)")
	case a.Zone() != "":
		return bad("has a zone, which names an interface of this host only")
	}
	a = a.Unmap()
	if noNodesIP(a) {
		return bad("is unspecified, multicast or broadcast, no node's: give the IP the other members reach")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return bad("has port %q: want 1 to 65535", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}
