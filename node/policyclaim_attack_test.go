package node

import (
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// TestForgedClaimGetsNoRuleText: b, a node with a valid certificate,
// opens through r circuits to d claiming it relays them for a (hop 1),
// to a service d has and to one it does not. d denies a both: b does not
// learn d's rules about a (before, the reason named the rule).
func TestForgedClaimGetsNoRuleText(t *testing.T) {
	c, _ := policyMesh(t, map[string]string{"d": `
deny  dial from=a service=payroll-2027-layoffs
deny  dial from=a service=web
allow dial from=* service=*
`})
	for _, service := range []string{"payroll-2027-layoffs", "web"} {
		t.Run(service, func(t *testing.T) { forgeClaim(t, c, service) })
	}
}

// forgeClaim opens as b through r a full handshake to d/service claiming
// a's name, and checks that the result names none of d's rules.
func forgeClaim(t *testing.T, c *cluster, service string) {
	b := c.node("b")
	l := b.link("r")
	o := &circuit.Open{Dest: "d", Source: "a", Service: service, Hop: 1, HopLimit: 15, Path: []string{"b"}, Flags: circuit.FlagSealed}
	hdr, _ := o.AppendTo(nil)
	ini, err := b.seal.Load().InitiateFresh(seal.Prologue("d", "a", o.Service, uint16(o.Flags)), "d", nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ini.First(hdr, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.OpenStream(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset(0)
	if _, err := s.Write(first); err != nil {
		t.Fatal(err)
	}
	res, err := circuit.ReadResult(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("b, claiming to relay for a, got %v from %s (%q)", res.Code, res.Node, res.Reason)
	if strings.Contains(res.Reason, service) || strings.Contains(res.Reason, "line") {
		t.Errorf("b read d's rule about a by claiming a's name: %q", res.Reason)
	}
}
