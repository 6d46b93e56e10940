package circuit

import (
	"bytes"
	"errors"
	"testing"
)

// TestAttackOpenServiceNamesOutsidePolicy: a service name holding ',',
// '#' or '*' cannot be named by a policy rule (a selector's separator,
// comment and wildcard), so a node serving one could not deny it. Before,
// ValidateService and ReadOpen took them; now Listen and Dial (through
// ValidateService) and every hop reading an open refuse them, and the
// other punctuation still reads back.
func TestAttackOpenServiceNamesOutsidePolicy(t *testing.T) {
	read := func(svc string) (*Open, error) {
		t.Helper()
		b, err := (&Open{Dest: "d", Source: "s", Service: svc}).AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		return ReadOpen(bytes.NewReader(b), 0)
	}
	for _, svc := range []string{"a,b", "ssh,web", "#", "web#1", "*", "api*"} {
		if _, err := read(svc); !errors.Is(err, ErrMalformedHeader) || !errors.Is(err, ErrInvalidService) {
			t.Errorf("open with service %q: %v, want a malformed header for an invalid service", svc, err)
		}
		if err := ValidateService(svc); !errors.Is(err, ErrInvalidService) {
			t.Errorf("ValidateService(%q) = %v, want ErrInvalidService", svc, err)
		}
	}
	for _, svc := range []string{"a=b", "a/b", "a;b", "a:b", "a!b", "a?b", "(a)", "a|b", "~a"} {
		if o, err := read(svc); err != nil || o.Service != svc {
			t.Errorf("open with service %q: %+v, %v; want it read back", svc, o, err)
		}
	}
}
