package node

import (
	"errors"
	"testing"
	"time"
)

func TestMemberLinkAddrCanonical(t *testing.T) {
	for _, s := range []string{"127.0.0.1:7000", "10.1.2.3:1", "[2001:db8::1]:443", "[::1]:65535"} {
		if err := checkLinkAddr(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range []string{
		"", "localhost:7000", "node.example:7000", "127.0.0.1", "127.0.0.1:0007000", "127.0.0.1:+7000",
		"127.000.0.1:7000", "[::ffff:127.0.0.1]:7000", "[2001:DB8::1]:443", "[2001:db8:0::1]:443",
		"[fe80::1%eth0]:7000", "0.0.0.0:7000", "[::]:7000", "224.0.0.1:7000", "255.255.255.255:7000",
		"127.0.0.1:0", "127.0.0.1:65536", " 127.0.0.1:7000",
	} {
		if err := checkLinkAddr(s); !errors.Is(err, errBadMeta) {
			t.Errorf("%q: %v, want a refusal", s, err)
		}
	}
}

func TestBackoffHostKey(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.2:1":                 "127.0.0.2",
		"[::ffff:127.0.0.2]:5":        "127.0.0.2",
		"[2001:db8:1:2:3::1]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:7000": "2001:db8:1:2::/64",
		"n1":                          "n1",
	} {
		if got := hostKey(addr); got != want {
			t.Errorf("hostKey(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestBackoffPerHostAcrossPortsAndNames: dials to unproven addresses of
// one host share one budget over ports and member names: 2 in progress
// or failed, then one per ban; an address that proved a certificate, and
// another host, are not barred; a host where a certificate was proven is
// banned briefly.
func TestBackoffPerHostAcrossPortsAndNames(t *testing.T) {
	d := &discovery{proven: map[string]string{}, hosts: map[string]*hostBudget{}, members: map[string]gossipMember{}}
	now := time.Now()
	dial := func(member, addr string) bool {
		if d.hostBarredLocked(member, addr, now) {
			return false
		}
		counted, ok := d.hostDialLocked(member, addr, now)
		if !ok || !counted {
			t.Fatalf("dial of %s at %s: counted %v, ok %v", member, addr, counted, ok)
		}
		return true
	}
	if !dial("g1", "192.0.2.1:1") || !dial("g2", "192.0.2.1:2") {
		t.Fatal("the first two dials of a host are barred")
	}
	if dial("g3", "192.0.2.1:3") {
		t.Fatal("a third dial started while two run")
	}
	d.hostDoneLocked("192.0.2.1:1", true, now)
	d.hostDoneLocked("192.0.2.1:2", true, now)
	if !d.hostBarredLocked("g4", "192.0.2.1:4", now.Add(59*time.Minute)) || d.hostBarredLocked("g4", "192.0.2.1:4", now.Add(61*time.Minute)) {
		t.Fatal("the host's ban is not an hour")
	}
	if !d.hostHardBarLocked("g4", "192.0.2.1:4", now) {
		t.Fatal("a host that proved nothing is barred softly")
	}
	d.proven["192.0.2.1:9"] = "real"
	if d.hostBarredLocked("real", "192.0.2.1:9", now) {
		t.Fatal("a proven address is barred by its host's budget")
	}
	if d.hostBarredLocked("g5", "192.0.2.2:1", now) {
		t.Fatal("another host is barred")
	}
	// After the hour, one dial, then the hour again.
	later := now.Add(time.Hour)
	now = later
	if !dial("g6", "192.0.2.1:6") || dial("g7", "192.0.2.1:7") {
		t.Fatal("not one dial after the ban")
	}
	d.hostDoneLocked("192.0.2.1:6", true, now)
	if !d.hostBarredLocked("g7", "192.0.2.1:7", now.Add(time.Minute)) {
		t.Fatal("a failed dial after the ban does not ban again")
	}
	// A host where a certificate was proven is banned for a minute.
	d.proven["192.0.2.3:1"] = "real2"
	d.noteHostLocked("192.0.2.3:1", now)
	dial("g8", "192.0.2.3:2")
	dial("g9", "192.0.2.3:3")
	d.hostDoneLocked("192.0.2.3:2", true, now)
	d.hostDoneLocked("192.0.2.3:3", true, now)
	if !d.hostBarredLocked("g10", "192.0.2.3:4", now) || d.hostBarredLocked("g10", "192.0.2.3:4", now.Add(signedBanMin)) {
		t.Fatal("a known host's ban is not signedBanMin")
	}
	if d.hostHardBarLocked("g10", "192.0.2.3:4", now) {
		t.Fatal("a known host is barred hard")
	}
}
