package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestE2EDialExitsOneWithTheReason: `circuitmesh dial` exits 0 only for a
// circuit that ended cleanly; a refusal, or a service down behind the far
// node, exits 1 with the reason on stderr.
func TestE2EDialExitsOneWithTheReason(t *testing.T) {
	l := newLab(t, "e2e")
	b := l.start("b", "", "--expose", "dead="+freeTCP(t))
	a := l.start("a", "", "--link", b.addr)
	a.waitRoute(t, "b", anyRoute)

	if out, err := l.try("dial", "b", "echo", "--data-dir", a.dir); err != nil {
		t.Fatalf("dial b echo with empty stdin: %v\n%s", err, out)
	}
	for service, want := range map[string]string{
		"dead":    "service unavailable",
		"nothing": "no such service",
	} {
		out, err := l.try("dial", "b", service, "--data-dir", a.dir)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, want) {
			t.Errorf("dial b %s: %v, want exit status 1 saying %q\n%s", service, err, want, out)
		}
	}
}
