package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyCheckInvalidNamesExitTwo: `circuitmesh policy check` exits 1
// for "denied", and the README says the exit status is 2 for a bad command
// line, "invalid argument, the daemon's checks of names and groups
// included". A FROM or TO that is no node name (node names are lower
// case) or a SERVICE that is no service name (circuit.ValidateService)
// exits 2 as a mistyped group does: no circuit can carry them. Before,
// they were decided: "Alice ssh" exited 1 (denied), "bob ssh,web" 0
// (allowed, although the policy denies both ssh and web), so a script
// reading the exit status took a denial or an allowance of a node or
// service it did not mean.
func TestPolicyCheckInvalidNamesExitTwo(t *testing.T) {
	l := newLab(t, "e2e")
	pol := filepath.Join(l.dir, "a.policy")
	writeMode(t, pol, "allow dial from=alice service=ssh\ndeny dial from=* service=ssh,web\nallow dial from=* service=*\nallow relay from=alice to=bob\n", 0o600)
	a := l.start("a", "", "--policy-file", pol)
	// The names as meant are decided: alice may dial ssh, bob may not.
	if code, out := l.exitCode("policy", "check", "alice", "ssh", "--data-dir", a.dir); code != 0 {
		t.Fatalf("policy check alice ssh: exit status %d, want 0:\n%s", code, out)
	}
	if code, out := l.exitCode("policy", "check", "bob", "ssh", "--data-dir", a.dir); code != 1 {
		t.Fatalf("policy check bob ssh: exit status %d, want 1:\n%s", code, out)
	}
	var bad []string
	for _, args := range [][]string{
		{"policy", "check", "Alice", "ssh"},            // FROM: capital
		{"policy", "check", "alice smith", "ssh"},      // FROM: a space
		{"policy", "check", "bob", "ssh,web"},          // SERVICE: a comma, policy syntax ("allowed" although ssh and web are denied)
		{"policy", "check", "bob", "ssh web"},          // SERVICE: a space
		{"policy", "check", "--relay", "alice", "Bob"}, // TO: capital
		{"policy", "check", "--relay", "Alice", "bob"}, // FROM: capital
	} {
		code, out := l.exitCode(append(args, "--data-dir", a.dir)...)
		t.Logf("circuitmesh %q: exit status %d: %s", args, code, strings.TrimSpace(out))
		if code != 2 {
			bad = append(bad, strings.Join(args, " "))
		}
	}
	if len(bad) > 0 {
		t.Errorf("policy check with names no node or service can have exited 0 (allowed) or 1 (denied), not 2 (invalid argument), for:\n  %s",
			strings.Join(bad, "\n  "))
	}
}
