package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFailedReloadAppliesNothing: `circuitmesh reload` (and SIGHUP)
// reads the policy and the identity files. When the identity files are
// refused (here node.key left readable by others, as a renewal copied in
// with the wrong mode would leave it) the reload fails and must change
// nothing: the old rules stay in force, as the failure and the log say.
// Before, the new policy was applied before the identity was read, while
// the daemon logged "keeping the current identity or policy". Once the
// key is fixed, a reload applies the policy and says so.
func TestFailedReloadAppliesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	pol := filepath.Join(l.dir, "d.policy")
	write := func(rules ...string) {
		t.Helper()
		tmp := pol + ".new"
		if err := os.WriteFile(tmp, []byte(strings.Join(rules, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, pol); err != nil {
			t.Fatal(err)
		}
	}
	write("allow dial from=a service=echo")
	d := l.start("d", "", "--policy-file", pol)
	if out := d.cli("policy", "check", "a", "echo"); !strings.Contains(out, "allowed") {
		t.Fatalf("policy check a echo at start:\n%s", out)
	}

	// The operator edits the policy (a no longer allowed, b allowed) while
	// node.key has become readable by others.
	write("allow dial from=b service=echo")
	key := filepath.Join(d.dir, "node.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}

	// stillOld checks that the policy in force is the first one.
	stillOld := func(how string) {
		t.Helper()
		if out, err := l.try("policy", "check", "a", "echo", "--data-dir", d.dir); err != nil || !strings.Contains(out, "allowed") {
			t.Errorf("after %s failed, a may no longer dial echo (%q, %v): the new policy was applied", how, strings.TrimSpace(out), err)
		}
	}
	out, err := l.try("reload", "--data-dir", d.dir)
	t.Logf("circuitmesh reload: %v %q", err, strings.TrimSpace(out))
	if err == nil || !strings.Contains(out, "the identity and the policy in force are kept") || !strings.Contains(out, "node.key") {
		t.Errorf("circuitmesh reload with an unsafe node.key: %v %q; want a failure naming node.key and saying the identity and the policy are kept", err, strings.TrimSpace(out))
	}
	stillOld("circuitmesh reload")
	d.waitLog(t, 1, "level=WARN", "reload failed: nothing changed, the identity and the policy in force are kept")
	if strings.Contains(d.log.String(), "authorization policy replaced") {
		t.Errorf("the daemon replaced the policy on a failed reload:\n%s", d.log.String())
	}

	// SIGHUP: the same, with the policy edited again (b denied, c allowed).
	write("allow dial from=c service=echo")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	d.waitLog(t, 1, "level=WARN", "SIGHUP: reload failed: nothing changed, the identity and the policy in force are kept")
	stillOld("SIGHUP")
	if strings.Contains(d.log.String(), "authorization policy replaced") {
		t.Errorf("the daemon replaced the policy on a failed SIGHUP reload:\n%s", d.log.String())
	}

	// The key fixed, the reload applies both and says what it did.
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = l.try("reload", "--data-dir", d.dir)
	t.Logf("circuitmesh reload once node.key is fixed: %v %q", err, strings.TrimSpace(out))
	if err != nil || !strings.Contains(out, "reloaded the identity of d") || !strings.Contains(out, "applied the policy of --policy-file "+pol+": 1 rules") {
		t.Fatalf("circuitmesh reload with safe files: %v %q; want the identity reloaded and the policy applied", err, strings.TrimSpace(out))
	}
	if out, err := l.try("policy", "check", "c", "echo", "--data-dir", d.dir); err != nil || !strings.Contains(out, "allowed") {
		t.Errorf("after a reload that succeeded, c may not dial echo: %q, %v", strings.TrimSpace(out), err)
	}
	if out, err := l.try("policy", "check", "a", "echo", "--data-dir", d.dir); err == nil || !strings.Contains(out, "denied") {
		t.Errorf("after a reload that succeeded, a may still dial echo: %q, %v", strings.TrimSpace(out), err)
	}
}
