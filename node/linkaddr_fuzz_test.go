package node

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzCheckLinkAddr checks the link address a member's gossip metadata
// names, which anyone with the gossip key chooses: a refusal wraps
// errBadMeta; an accepted address is an IP:port literal in the one
// spelling netip gives it, of no zone, not IPv4-mapped, dialable (no port
// 0, unspecified, multicast or broadcast address), and keyed to a host
// that is its own IPv4 address or an IPv6 /64.
func FuzzCheckLinkAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1:4242", "[2001:db8::1]:4242", "127.0.0.2:0005353", "[::ffff:127.0.0.2]:5353", "[fe80::1%eth0]:1", "0.0.0.0:1", "224.0.0.1:1", "255.255.255.255:1", "host:1", "[::]:1", "1.2.3.4:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkLinkAddr(s)
		if err != nil {
			if !errors.Is(err, errBadMeta) || !errors.Is(err, errLinkAddr) {
				t.Fatalf("checkLinkAddr(%q): %v does not wrap errLinkAddr and errBadMeta", s, err)
			}
			return
		}
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil || ap.String() != s {
			t.Fatalf("accepted %q, which netip spells %q (%v)", s, ap, perr)
		}
		a := ap.Addr()
		if a.Zone() != "" || a.Is4In6() || ap.Port() == 0 || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			t.Fatalf("accepted %q", s)
		}
		k := hostKey(s)
		if a.Is4() && k != a.String() {
			t.Fatalf("host of %q is %q", s, k)
		}
		if a.Is6() {
			p, perr := netip.ParsePrefix(k)
			if perr != nil || p.Bits() != 64 || !p.Contains(a) {
				t.Fatalf("host of %q is %q, not its /64 (%v)", s, k, perr)
			}
		}
	})
}
