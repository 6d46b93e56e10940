package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// TestAttackMisspeltSelectorsNeverMatch: a selector value that breaks the
// rule of the names it is matched with (node names and groups:
// identity.ValidateName; services: circuit.ValidateService) can never
// match, so a deny rule holding one denies nothing. Before, such values
// parsed: an operator's "deny dial from=Mallory service=*" (capital M;
// node names are lower case) let mallory through on the next rule, and
// nothing said so. Now Parse refuses each with a *SyntaxError naming its
// line and wrapping the name rule's sentinel, and values at the edges of
// the rules still parse and match.
func TestAttackMisspeltSelectorsNeverMatch(t *testing.T) {
	mallory := policy.Subject{Name: "mallory", Groups: []string{"ops"}}
	for _, tc := range []struct {
		rule string
		want error // the name rule's sentinel
	}{
		{"deny dial from=Mallory service=*", identity.ErrInvalidName},
		{"deny dial from=bob,mallory! service=*", identity.ErrInvalidName},
		{"deny dial from=-mallory service=*", identity.ErrInvalidName},
		{"deny dial from=m/allory service=*", identity.ErrInvalidName},
		{"deny dial from=mällory service=*", identity.ErrInvalidName},
		{"deny dial from=" + strings.Repeat("m", identity.MaxNameLen+1) + " service=*", identity.ErrInvalidName},
		{"deny dial from=group:Ops service=*", identity.ErrInvalidName},
		{"deny dial from=group: service=*", identity.ErrInvalidName},
		{"deny dial from=group:ops:x service=*", identity.ErrInvalidName},
		{"deny dial from=* service=ssh,\x00ssh", circuit.ErrInvalidService},
		{"deny dial from=* service=\u202essh", circuit.ErrInvalidService},
		{"deny dial from=* service=" + strings.Repeat("s", circuit.MaxServiceLen+1), circuit.ErrInvalidService},
		{"deny relay from=Mallory to=*", identity.ErrInvalidName},
		{"deny relay from=* to=_vault", identity.ErrInvalidName},
		{"deny relay from=* to=group:Secret", identity.ErrInvalidName},
	} {
		text := "# who may reach this node\nallow dial from=group:ops service=web\n" + tc.rule +
			"\nallow dial from=* service=*\nallow relay from=* to=*\n"
		p, err := policy.Parse(text)
		if err == nil {
			d := p.Dial(mallory, "ssh")
			if strings.HasPrefix(tc.rule, "deny relay") {
				d = p.Relay(mallory, policy.Subject{Name: "vault", Groups: []string{"secret"}})
			}
			t.Errorf("%q parsed, though no name can match it: %s", tc.rule, d.Reason)
			continue
		}
		var se *policy.SyntaxError
		if !errors.As(err, &se) || se.Line != 3 || !errors.Is(err, policy.ErrSyntax) || !errors.Is(err, tc.want) ||
			!strings.Contains(err.Error(), "policy line 3: ") || !strings.Contains(err.Error(), "can never match") {
			t.Errorf("%q: %v, want a syntax error at line 3 wrapping %v", tc.rule, err, tc.want)
		}
	}

	// Values at the edges of the rules parse, and match.
	long := strings.Repeat("n", identity.MaxNameLen)
	p, err := policy.Parse("allow dial from=0a,web-1.b_c," + long + ",group:site-a service=_info,Grpc.Health/Check,日本語,group:ops\n" +
		"allow relay from=* to=group:x9,z\n")
	if err != nil {
		t.Fatalf("names at the edges of the rules: %v", err)
	}
	for _, name := range []string{"0a", "web-1.b_c", long} {
		for _, svc := range []string{"_info", "Grpc.Health/Check", "日本語", "group:ops"} {
			if d := p.Dial(policy.Subject{Name: name}, svc); !d.Allowed || d.Rule == nil {
				t.Errorf("%s to %s: %s, want allowed by line 1", name, svc, d.Reason)
			}
		}
	}
	if d := p.Dial(policy.Subject{Name: "x", Groups: []string{"site-a"}}, "_info"); !d.Allowed {
		t.Errorf("group site-a: %s, want allowed", d.Reason)
	}
	if d := p.Relay(policy.Subject{Name: "a"}, policy.Subject{Name: "y", Groups: []string{"x9"}}); !d.Allowed {
		t.Errorf("relay to group x9: %s, want allowed", d.Reason)
	}
}
