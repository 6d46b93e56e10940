package node

import (
	"errors"
	"strings"
	"testing"
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
	a, m, info := infoLiar(t, "grpc.health.v1.Health/Check", "日本語")
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
	wantInfoRefused(t, a, m, lie, ErrInvalidService)
}
