package node

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestAttackInfoServicesAreServiceNames: the services of a node's info
// answer are its word, and an application takes them as names to dial (the
// mesh page offers them, `circuitmesh graph` prints them). m, a node with a
// valid certificate, answers _info listing a service that no node can
// serve: with a terminal escape, a space, a ',' (which no policy rule can
// name) or 64 bytes. Before, a's Info(ctx, "m") returned each, the escape
// made printable ("db?[31m", a name m does not serve either); now the
// answer is bad (ErrBadInfo wrapping ErrInvalidService), as one naming a
// link's peer that is not a node name is, its error printable, and an
// answer whose services are service names is still read.
func TestAttackInfoServicesAreServiceNames(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.DisableInfo = cfg.Name == "m" }
	c.build("a-m")
	c.waitRoute("a", "m", 1)
	a, m := c.nodes["a"], c.nodes["m"]

	info := NodeInfo{Name: "m", Mesh: "test", Role: "router", Version: "v1",
		Services: []string{InfoService, "grpc.health.v1.Health/Check", "日本語"},
		Links:    []InfoLink{{Peer: "a", Role: "router", RTT: time.Millisecond, Cost: 10}}}
	if got, err := DecodeInfo(encodeInfo(info)); err != nil || strings.Join(got.Services, " ") != strings.Join(info.Services, " ") {
		t.Fatalf("DecodeInfo of an honest answer: %v, %v", got.Services, err)
	}
	for _, svc := range []string{"db" + escRed, "a b", "ssh,web", strings.Repeat("s", 64), ""} {
		lie := info
		lie.Services = append([]string{svc}, info.Services...)
		if got, err := DecodeInfo(encodeInfo(lie)); !errors.Is(err, ErrBadInfo) || !errors.Is(err, ErrInvalidService) {
			t.Errorf("DecodeInfo of service %.20q: %q, %v; want ErrBadInfo wrapping ErrInvalidService", svc, got.Services, err)
		}
	}

	lie := info
	lie.Services = append([]string{"db" + escRed}, info.Services...)
	serveInfoAnswer(t, m, lie)
	got, err := a.Info(ctxT(t, 10*time.Second), "m")
	switch {
	case err == nil:
		t.Fatalf("a's Info of m returned services %q", got.Services)
	case !errors.Is(err, ErrBadInfo) || !errors.Is(err, ErrInvalidService):
		t.Fatalf("a's Info of m: %v, want ErrBadInfo wrapping ErrInvalidService", err)
	case strings.ContainsFunc(err.Error(), func(r rune) bool { return !unicode.IsPrint(r) }):
		t.Fatalf("a's Info of m: the error is not printable: %q", err)
	}
}
