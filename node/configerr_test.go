package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// newAndStart is what a user does with a Config: New, then Start. It
// returns the first error.
func newAndStart(t *testing.T, cfg Config) error {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return n.Start(ctx)
}

// TestInvalidValuesMatchErrInvalidConfig: a user sets values the
// documentation says are invalid and checks the error with
// errors.Is(err, node.ErrInvalidConfig), the package's validation error.
// Before, these were refused with the errors of the packages underneath
// (routing's ErrInvalidConfig from New; links' ErrConfig only from Start,
// after New took the configuration), which do not match it. Both are
// refused by New now.
func TestInvalidValuesMatchErrInvalidConfig(t *testing.T) {
	for name, set := range map[string]func(*Config){
		// Negative is not a documented value of UpdateInterval.
		"Routing.UpdateInterval<0": func(c *Config) { c.Routing.UpdateInterval = -time.Second },
		// StreamWindow: "at most LinkWindow/4".
		"Limits.StreamWindow>LinkWindow/4": func(c *Config) { c.Limits.LinkWindow = 32 << 20; c.Limits.StreamWindow = 16 << 20 },
		// "at least links.MinStreamWindow", and so LinkWindow 4 × that.
		"Limits.StreamWindow<MinStreamWindow": func(c *Config) { c.Limits.StreamWindow = links.MinStreamWindow - 1 },
		"Limits.LinkWindow<4×MinStreamWindow": func(c *Config) { c.Limits.LinkWindow = 4*links.MinStreamWindow - 1 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{Name: "a", Insecure: true, GracePeriod: -1}
			set(&cfg)
			n, err := New(cfg)
			if err == nil {
				n.Close()
				err = newAndStart(t, cfg)
				t.Errorf("%s: New took it; Start: %v", name, err)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s: got %v; want an error matching node.ErrInvalidConfig", name, err)
			}
		})
	}
}

// TestLinkWindowAloneIsAWorkingConfig: Limits.LinkWindow is a setting of
// its own. Set alone below 16 MiB, StreamWindow's default (4 MiB) would
// be more than the quarter of it a stream may take: the default is then
// that quarter, and the node starts and carries a circuit. Before, New
// took Limits{LinkWindow: 8 MiB} and Start refused it every time
// ("LinkWindow 8388608 below 4 × MaxStreamWindow").
func TestLinkWindowAloneIsAWorkingConfig(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.Limits.LinkWindow = 8 << 20 }
	c.link("a", "b")
	c.waitRoute("a", "b", 1)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, err := c.nodes["a"].Dial(ctx, "b", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := bytes.Repeat([]byte("w"), 3<<20) // more than the stream's first window
	go func() { _, _ = conn.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through links of an 8 MiB window: %v", err)
	}
}

// TestOutOfRangeValuesRefusedNamingTheField: a user sets a value no node
// can run with and expects New to refuse it with an error matching
// node.ErrInvalidConfig that names the field. Before, New took a
// Limits.LinkWindow of 2^62 or more (or a StreamWindow of 2^61, whose
// default link window, four times it, is), and the process panicked in
// quic-go at the first link's handshake ("value doesn't fit into 62
// bits"); took a RelayBuffer of 2^50, and the process panicked at the
// first relayed circuit ("makeslice: len out of range"); took a
// Limits.MaxCircuitsPerLink of 2^62, which quic-go cut to 2^60 streams
// without a word, or of the largest int, which overflowed the link's
// QUIC stream limit to a negative one, so that no link came up ("open
// control stream: closed by peer with code 0x104"); replaced a
// negative Discovery.JoinInterval, Interval or LeafLinks by its default
// and a LongLinks of TargetLinks or more by TargetLinks - 1, without a
// word; and refused a negative DialTimeout, HeaderTimeout or
// ReaderStall with "durations must not be negative", and a negative
// Routing.UpdateInterval with "negative interval", naming none.
func TestOutOfRangeValuesRefusedNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		field string
		set   func(*Config)
	}{
		{"Limits.LinkWindow", func(c *Config) { c.Limits.LinkWindow = 1 << 62 }},
		{"Limits.LinkWindow", func(c *Config) { c.Limits.LinkWindow = math.MaxUint64 }},
		{"Limits.StreamWindow", func(c *Config) { c.Limits.StreamWindow = 1 << 61 }},
		{"Limits.RelayBuffer", func(c *Config) { c.Limits.RelayBuffer = 1 << 50 }},
		{"Limits.MaxCircuitsPerLink", func(c *Config) { c.Limits.MaxCircuitsPerLink = 1 << 62 }},
		{"Limits.MaxCircuitsPerLink", func(c *Config) { c.Limits.MaxCircuitsPerLink = math.MaxInt }},
		// A quarter of a 1 MiB link window: the stream window is 256 KiB.
		{"Limits.RelayBuffer", func(c *Config) { c.Limits.LinkWindow = 1 << 20; c.Limits.RelayBuffer = 512 << 10 }},
		{"DialTimeout", func(c *Config) { c.DialTimeout = -time.Second }},
		{"Limits.HeaderTimeout", func(c *Config) { c.Limits.HeaderTimeout = -time.Second }},
		{"Limits.ReaderStall", func(c *Config) { c.Limits.ReaderStall = -time.Second }},
		{"Routing.UpdateInterval", func(c *Config) { c.Routing.UpdateInterval = -time.Second }},
		{"Discovery.JoinInterval", func(c *Config) { c.Discovery.JoinInterval = -time.Second }},
		{"Discovery.Interval", func(c *Config) { c.Discovery.Interval = -time.Second }},
		{"Discovery.LeafLinks", func(c *Config) { c.Discovery.LeafLinks = -1 }},
		{"Discovery.LongLinks", func(c *Config) { c.Discovery.LongLinks = 7 }}, // TargetLinks 7
	} {
		cfg := Config{Name: "a", Insecure: true, GracePeriod: -1}
		tc.set(&cfg)
		n, err := New(cfg)
		if err == nil {
			n.Close()
			t.Errorf("%s: New took it", tc.field)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+" ") {
			t.Errorf("%s: New: %v; want an error matching node.ErrInvalidConfig naming %s", tc.field, err, tc.field)
		}
	}
}

// TestLargestWindowsCarryCircuits: the largest values New takes work. On
// a-r-b, a's link window is MaxLinkWindow, b's stream window a quarter of
// it (its link window four times that, by default), and r copies with a
// relay buffer as large as its stream window and takes the most circuits
// per link New allows (links.MaxMaxStreams): a 1 MiB echo from a to b
// goes through r.
func TestLargestWindowsCarryCircuits(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "a":
			cfg.Limits.LinkWindow = 1<<62 - 1 // MaxLinkWindow
		case "r":
			cfg.Limits.RelayBuffer = links.DefaultMaxStreamWindow
			cfg.Limits.MaxCircuitsPerLink = 1<<60 - 1 // links.MaxMaxStreams
		case "b":
			cfg.Limits.StreamWindow = (1<<62 - 1) / 4
		}
	}
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	if err := roundTrip(t, c.nodes["a"], "b", EchoService, bytes.Repeat([]byte("w"), 1<<20)); err != nil {
		t.Fatalf("echo a-r-b with the largest windows: %v", err)
	}
}

// TestMalformedNamesAndAddressesRefusedByNew: a user sets a name no node
// can have or an address no socket can bind, and expects New to refuse
// it with an error matching node.ErrInvalidConfig that names the field,
// as for the other fields. Before, an Insecure node's Name or Mesh that
// breaks identity.ValidateName failed New with identity.ErrInvalidName
// alone ("insecure identity: node: name ..."); a LinkCosts peer that no
// node can be named was taken, though SetLinkCost refuses it; and New
// took a ListenAddr or Discovery.BindAddr without a port or with one out
// of range, which Start then failed on (`listen udp: address nonsense:
// missing port in address`), leaving the node closed, or, for a gossip
// port above 65535, which memberlist was left to refuse; and a
// StaticLinks entry without a port, or with port 0, which the node then
// redialled for as long as it ran; and a Discovery.Join entry with an
// empty name or a port out of range, which it retried every
// JoinInterval.
func TestMalformedNamesAndAddressesRefusedByNew(t *testing.T) {
	for _, tc := range []struct {
		field string
		name  bool // the error also matches identity.ErrInvalidName
		set   func(*Config)
	}{
		{"Name", true, func(c *Config) { c.Name = "Billing-7" }},
		{"Mesh", true, func(c *Config) { c.Mesh = "My Mesh" }},
		{`LinkCosts["Bad Peer"]`, true, func(c *Config) { c.LinkCosts = map[string]links.Cost{"Bad Peer": 10} }},
		{"ListenAddr", false, func(c *Config) { c.ListenAddr = "nonsense" }},
		{"ListenAddr", false, func(c *Config) { c.ListenAddr = "127.0.0.1:99999" }},
		{"Discovery.BindAddr", false, func(c *Config) { c.Discovery.BindAddr = "nonsense" }},
		{"Discovery.BindAddr", false, func(c *Config) { c.Discovery.BindAddr = "127.0.0.1:gossip" }},
		{"Discovery.BindAddr", false, func(c *Config) { c.Discovery.BindAddr = "127.0.0.1:70000" }},
		{"StaticLinks[0]", false, func(c *Config) { c.StaticLinks = []string{"10.0.0.2"} }},
		{"StaticLinks[1]", false, func(c *Config) { c.StaticLinks = []string{"10.0.0.2:4242", "10.0.0.3:0"} }},
		{"Discovery.Join[0]", false, func(c *Config) { c.Discovery.Join = []string{"dns:seed.example:0"} }},
		{"Discovery.Join[1]", false, func(c *Config) { c.Discovery.Join = []string{"10.0.0.2", "10.0.0.3:70000"} }},
		{"Discovery.Join[0]", false, func(c *Config) { c.Discovery.Join = []string{"dns+srv:"} }},
		{"Discovery.Join[0]", false, func(c *Config) { c.Discovery.Join = []string{""} }},
	} {
		cfg := Config{Name: "a", Insecure: true, GracePeriod: -1, Logger: testLogger(t)}
		tc.set(&cfg)
		n, err := New(cfg)
		if err == nil {
			n.Close()
			t.Errorf("%s: New took it; Start: %v", tc.field, newAndStart(t, cfg))
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+" ") {
			t.Errorf("%s: New: %v; want an error matching node.ErrInvalidConfig naming %s", tc.field, err, tc.field)
		}
		if tc.name && !errors.Is(err, identity.ErrInvalidName) {
			t.Errorf("%s: New: %v; want an error matching identity.ErrInvalidName too", tc.field, err)
		}
	}
	// What the sockets take is still taken.
	for _, addr := range []string{":0", "127.0.0.1:0", "[::1]:0", "localhost:4242"} {
		n, err := New(Config{Name: "a", Insecure: true, ListenAddr: addr, Discovery: DiscoveryConfig{BindAddr: addr}})
		if err != nil {
			t.Errorf("ListenAddr and Discovery.BindAddr %q: New: %v", addr, err)
			continue
		}
		n.Close()
	}
	for _, addr := range []string{"localhost:4242", "10.0.0.2:4242", "[::1]:4242"} {
		n, err := New(Config{Name: "a", Insecure: true, StaticLinks: []string{addr}})
		if err != nil {
			t.Errorf("StaticLinks %q: New: %v", addr, err)
			continue
		}
		n.Close()
	}
	join := []string{"10.0.0.2", "10.0.0.2:7946", "::1", "[::1]:7946", "seed.example", "dns:seed.example", "dns:seed.example:7946", "dns+srv:_gossip._udp.example"}
	for _, j := range join {
		n, err := New(Config{Name: "a", Insecure: true, Discovery: DiscoveryConfig{BindAddr: "127.0.0.1:0", Join: []string{j}}})
		if err != nil {
			t.Errorf("Discovery.Join %q: New: %v", j, err)
			continue
		}
		n.Close()
	}
}
