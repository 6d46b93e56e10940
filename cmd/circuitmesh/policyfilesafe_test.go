package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// writeMode writes text to path and sets mode (whatever the umask).
func writeMode(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyFileOthersMayWriteIsRefused: the policy decides who may open
// what on the node and is reread on every reload, so a --policy-file (or
// a --config file holding policy lines) that group or others may write is
// refused (identity.ErrUnsafeFile), as a node.key or ca.key others may
// change is: another local user would otherwise rewrite the policy and
// have it applied by the next reload. Others may read it. A config file
// without policy lines is not the policy and is not checked here.
func TestPolicyFileOthersMayWriteIsRefused(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "d.policy")
	for _, mode := range []os.FileMode{0o666, 0o664, 0o646, 0o620} {
		writeMode(t, pol, "allow dial from=ops1 service=ssh\n", mode)
		_, err := policySource{file: pol}.load()
		if !errors.Is(err, identity.ErrUnsafeFile) || !strings.Contains(err.Error(), "group or others may write it") {
			t.Errorf("--policy-file of mode %04o: %v, want identity.ErrUnsafeFile", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o600, 0o444} {
		writeMode(t, pol, "allow dial from=ops1 service=ssh\n", mode)
		if p, err := (policySource{file: pol}).load(); err != nil || len(p.Rules()) != 1 {
			t.Errorf("--policy-file of mode %04o: %v, want it taken", mode, err)
		}
	}
	conf := filepath.Join(dir, "d.conf")
	writeMode(t, conf, "listen = 127.0.0.1:0\npolicy = allow dial from=ops1 service=ssh\n", 0o666)
	if _, err := (policySource{config: conf}).load(); !errors.Is(err, identity.ErrUnsafeFile) || !strings.Contains(err.Error(), "config file with policy lines") {
		t.Errorf("config file of mode 0666 with policy lines: %v, want identity.ErrUnsafeFile", err)
	}
	writeMode(t, conf, "listen = 127.0.0.1:0\n", 0o666)
	if _, err := (policySource{config: conf}).load(); err != nil {
		t.Errorf("config file of mode 0666 without policy lines: %v, want no policy and no error", err)
	}

	if testing.Short() {
		return // the daemon's part below
	}
	l := newLab(t, "e2e")
	writeMode(t, pol, "allow dial from=ops1 service=ssh\n", 0o666)
	l.cli("cert", "issue", "d", "--ca-dir", l.ca, "--out", filepath.Join(l.dir, "d"))
	out, err := l.try("run", "--data-dir", filepath.Join(l.dir, "d"), "--listen", "127.0.0.1:0", "--policy-file", pol)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out, "refusing "+pol) || !strings.Contains(out, "chmod go-w") {
		t.Fatalf("run with a --policy-file of mode 0666: %v %q; want it refused (exit status 1) saying how to fix it", err, strings.TrimSpace(out))
	}

	// Taken once safe; made writable by others again and rewritten, it is
	// refused on reload and the rules in force stay.
	writeMode(t, pol, "allow dial from=ops1 service=ssh\n", 0o644)
	d := l.start("d", "", "--policy-file", pol)
	writeMode(t, pol, "allow dial\n", 0o666)
	out, err = l.try("reload", "--data-dir", d.dir)
	if err == nil || !strings.Contains(out, "refusing "+pol) || !strings.Contains(out, "the identity and the policy in force are kept") {
		t.Errorf("reload of a --policy-file of mode 0666: %v %q; want it refused", err, strings.TrimSpace(out))
	}
	if out, err := l.try("policy", "check", "mallory", "ssh", "--data-dir", d.dir); err == nil || !strings.Contains(out, "denied") {
		t.Errorf("after the refused reload, mallory may open ssh: %q", strings.TrimSpace(out))
	}
}

// TestPolicyFileAnotherUserOwnsOrWritesIsRefused: a --policy-file another
// user owns is theirs to rewrite, and one others may write is anyone's:
// here another local user (uid 65534) rewrites "allow dial
// from=ops1 service=ssh" into "allow dial" (every member may open ssh),
// and the reload must refuse it (identity.ErrUnsafeFile) and keep the
// rules in force. Before, the rewritten policy was applied.
func TestPolicyFileAnotherUserOwnsOrWritesIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("CANNOT RUN (not a pass): needs root to give the policy file to another user and write it as that user")
	}
	dir, err := os.MkdirTemp("", "policyowner")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // root's directory, not writable by others
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "d.policy")
	writeMode(t, pol, "allow dial from=ops1 service=ssh\n", 0o644)
	if err := os.Chown(pol, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err = policySource{file: pol}.load()
	if !errors.Is(err, identity.ErrUnsafeFile) || !strings.Contains(err.Error(), "owned by another user") {
		t.Fatalf("--policy-file owned by uid 65534: %v, want identity.ErrUnsafeFile", err)
	}
	if testing.Short() {
		return
	}
	l := newLab(t, "e2e")
	if err := os.Chown(pol, 0, 0); err != nil {
		t.Fatal(err)
	}
	d := l.start("d", "", "--policy-file", pol)
	if out, err := l.try("policy", "check", "mallory", "ssh", "--data-dir", d.dir); err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("policy check mallory ssh at start: %v\n%s", err, out)
	}
	for _, how := range []struct {
		name  string
		setup func() error
	}{
		{"owned by uid 65534", func() error { return os.Chown(pol, 65534, 65534) }},
		{"root's, mode 0666", func() error {
			if err := os.Chown(pol, 0, 0); err != nil {
				return err
			}
			return os.Chmod(pol, 0o666)
		}},
	} {
		if err := how.setup(); err != nil {
			t.Fatal(err)
		}
		// Another local user rewrites the file in place.
		w := exec.Command("/bin/sh", "-c", `printf 'allow dial\n' > "$0"`, pol)
		w.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := w.CombinedOutput(); err != nil {
			t.Fatalf("%s: nobody writing the policy file: %v %s", how.name, err, out)
		}
		out, rerr := l.try("reload", "--data-dir", d.dir)
		t.Logf("%s: reload after nobody's edit: err=%v %q", how.name, rerr, strings.TrimSpace(out))
		if rerr == nil || !strings.Contains(out, "refusing "+pol) {
			t.Errorf("%s: reload took a policy file another user rewrote: %v %q", how.name, rerr, strings.TrimSpace(out))
		}
		if cout, cerr := l.try("policy", "check", "mallory", "ssh", "--data-dir", d.dir); cerr == nil || !strings.Contains(cout, "denied") {
			t.Errorf("%s: after another user (uid 65534) rewrote the policy file, mallory may open ssh (%q)", how.name, strings.TrimSpace(cout))
		}
		writeMode(t, pol, "allow dial from=ops1 service=ssh\n", 0o644)
	}
}
