package main

import (
	"strings"
	"testing"
)

// TestPolicyCheckRelayOnALeafSaysDenied: `circuitmesh policy check
// --relay FROM TO` asks the running daemon for the decision it makes, and
// a --leaf daemon refuses every circuit it would relay ("is a leaf and
// does not relay"), so the check must answer denied, with that reason,
// and exit with status 1; the start line must not say that members may
// relay through it, and says relay="none (leaf)".
func TestPolicyCheckRelayOnALeafSaysDenied(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	d := l.start("d", "", "--leaf")
	out, err := l.try("policy", "check", "--relay", "a", "b", "--data-dir", d.dir)
	t.Logf("policy check --relay a b on a leaf: exit err %v\n%s", err, out)
	if err == nil || strings.Contains(out, "allowed") || !strings.Contains(out, "is a leaf and does not relay") {
		t.Errorf("policy check --relay on a --leaf daemon: %q (exit err %v), want denied (a leaf does not relay) and exit status 1", strings.TrimSpace(out), err)
	}
	d.waitLog(t, 1, "node started", "role=leaf")
	d.waitLog(t, 1, "no authorization policy", `relay="none (leaf)"`)
	if strings.Contains(d.log.String(), "relay through it") {
		t.Errorf("a --leaf daemon logs at start that every member may relay through it:\n%s", d.log.String())
	}
}
