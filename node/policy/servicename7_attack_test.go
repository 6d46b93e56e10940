package policy_test

import (
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// TestAttackServiceNamesPolicyCannotName: every service name the rule
// allows (circuit.ValidateService, which Listen applies) must be one a
// policy rule can name, or an operator cannot deny it: a node publishing
// "a,b" is open to a policy that means to deny it. Before, the rule allowed
// ',', '#' and '*', and "deny dial from=* service=a,b" denied "a" and "b"
// but not "a,b" (allowed by the next rule), "service=#a" was a syntax
// error (the comment took the value) and "service=*" denied every
// service. Now such names break the rule, and every other name built from
// each ASCII punctuation and symbol is named exactly by its own rules.
func TestAttackServiceNamesPolicyCannotName(t *testing.T) {
	var names []string
	for c := byte('!'); c <= '~'; c++ {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		s := string(c)
		names = append(names, s, "a"+s+"b", s+"a", "a"+s, s+s)
	}
	names = append(names, "grpc.health.v1.Health/Check", "svc:8080", "日本語", "group:ops", "_info", "a=b=c")
	x := policy.Subject{Name: "x", Groups: []string{"ops"}}
	valid := 0
	for _, name := range names {
		if circuit.ValidateService(name) != nil {
			continue
		}
		valid++
		other := "other"
		if name == other {
			other = "another"
		}
		deny, err := policy.Parse("deny dial from=* service=ssh," + name + "\nallow dial from=* service=*\n")
		if err != nil {
			t.Errorf("service %q: a rule denying it does not parse: %v", name, err)
			continue
		}
		if d := deny.Dial(x, name); d.Allowed || d.Rule == nil || d.Rule.Line != 1 {
			t.Errorf("service %q: deny rule: %s; want denied by line 1", name, d.Reason)
		}
		if d := deny.Dial(x, other); !d.Allowed || d.Rule == nil || d.Rule.Line != 2 {
			t.Errorf("service %q: %q: %s; want allowed by line 2", name, other, d.Reason)
		}
		allow, err := policy.Parse("allow dial from=* service=" + name + " # only this one\n")
		if err != nil {
			t.Errorf("service %q: a rule allowing it does not parse: %v", name, err)
			continue
		}
		if d := allow.Dial(x, name); !d.Allowed {
			t.Errorf("service %q: allow rule: %s; want allowed", name, d.Reason)
		}
		if d := allow.Dial(x, other); d.Allowed {
			t.Errorf("service %q: %q: %s; want denied (default deny)", name, other, d.Reason)
		}
	}
	if refused := len(names) - valid; valid < 120 || refused > 3*5 {
		t.Fatalf("%d of %d names valid, %d refused by the rule; the test wants most of them valid", valid, len(names), refused)
	}
}
