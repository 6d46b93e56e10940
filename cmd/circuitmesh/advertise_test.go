package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/circuitmesh/circuitmesh/node"
)

// --gossip-advertise and --advertise reach node.DiscoveryConfig's
// AdvertiseAddr and LinkAdvertiseAddr from the command line, the
// environment and the config file alike.
func TestAdvertiseFlagsFromCommandLineEnvironmentAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--insecure", "--name", "a", "--data-dir", dir, "--gossip", "0.0.0.0:7946"}
	check := func(how string, d daemonConfig, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if dc := d.node.Discovery; dc.AdvertiseAddr != "203.0.113.7:17946" || dc.LinkAdvertiseAddr != "203.0.113.7:14242" {
			t.Errorf("%s: AdvertiseAddr %q, LinkAdvertiseAddr %q; want 203.0.113.7:17946 and 203.0.113.7:14242", how, dc.AdvertiseAddr, dc.LinkAdvertiseAddr)
		}
	}
	d, err := parseRun(t, append(base, "--gossip-advertise", "203.0.113.7:17946", "--advertise", "203.0.113.7:14242")...)
	check("flags", d, err)

	cfg := writeFile(t, dir, "node.conf", "gossip-advertise = 203.0.113.7:17946\nadvertise = \"203.0.113.7:14242\"\n")
	d, err = parseRun(t, append(base, "--config", cfg)...)
	check("config file", d, err)

	t.Setenv("CIRCUITMESH_GOSSIP_ADVERTISE", "203.0.113.7:17946")
	t.Setenv("CIRCUITMESH_ADVERTISE", "203.0.113.7:14242")
	d, err = parseRun(t, base...)
	check("environment", d, err)
}

// An advertised address that reaches no node from elsewhere (an
// unspecified IP, a host name memberlist would not parse, port 0) or one
// given without --gossip is refused at start as a usage error matching
// node.ErrAdvertiseAddr, naming the config file's line when it came from
// there, and by a reload's check of the config file too.
func TestBadAdvertiseAddressesAreRefused(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--insecure", "--name", "a", "--data-dir", dir, "--gossip", "0.0.0.0:7946"}
	for _, flag := range []string{"gossip-advertise", "advertise"} {
		for _, bad := range []string{"0.0.0.0:4242", "[::]:4242", "node.example.com:4242", "203.0.113.7:0", "203.0.113.7", "203.0.113.7:70000"} {
			_, err := parseRun(t, append(base, "--"+flag, bad)...)
			var ue *usageError
			if !errors.As(err, &ue) || !errors.Is(err, node.ErrAdvertiseAddr) || !strings.Contains(err.Error(), "--"+flag) || !strings.Contains(err.Error(), bad) {
				t.Errorf("--%s %s: %v; want a usage error naming the flag and the value, matching node.ErrAdvertiseAddr", flag, bad, err)
			}

			cfg := writeFile(t, dir, "node.conf", "# a node behind NAT\n"+flag+" = "+bad+"\n")
			_, err = parseRun(t, append(base, "--config", cfg)...)
			if !errors.Is(err, node.ErrAdvertiseAddr) || !strings.Contains(err.Error(), "node.conf:2:") {
				t.Errorf("%s = %s in the config file: %v; want node.ErrAdvertiseAddr at node.conf:2", flag, bad, err)
			}
			err = checkRunConfig(append([]string{"circuitmesh", "run", "--config", cfg}, base...))
			if !errors.Is(err, node.ErrAdvertiseAddr) || !strings.Contains(err.Error(), "node.conf:2:") {
				t.Errorf("reload check of %s = %s: %v; want node.ErrAdvertiseAddr at node.conf:2", flag, bad, err)
			}
		}
		_, err := parseRun(t, "--insecure", "--name", "a", "--data-dir", dir, "--"+flag, "203.0.113.7:4242")
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "needs --gossip") {
			t.Errorf("--%s without --gossip: %v; want a usage error saying it needs --gossip", flag, err)
		}
	}
}
