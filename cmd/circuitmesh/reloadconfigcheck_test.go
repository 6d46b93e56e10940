package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestReloadRefusesAConfigFileTheDaemonRefusesAtStart: `circuitmesh
// reload` (and SIGHUP) rereads the config file for its policy lines; a
// file the daemon would refuse at start (an unknown flag, a value its
// checks refuse) is refused by the reload too, naming the line, and the
// policy in force is kept, so that the operator learns of it now rather
// than at the next restart.
func TestReloadRefusesAConfigFileTheDaemonRefusesAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon")
	}
	l := newLab(t, "e2e")
	conf := filepath.Join(l.dir, "d.conf")
	writeConfig(t, conf, "policy = allow dial from=* service=web")
	d := l.start("d", "", "--config", conf)

	for _, bad := range []string{"bogus-flag = 1", "log-level = loud"} {
		writeConfig(t, conf, "policy = allow dial from=* service=web", "policy = allow dial from=* service=ssh", bad)
		// The same file at start: refused.
		if out, err := l.try("run", "--config", conf, "--data-dir", filepath.Join(l.dir, "other"), "--insecure", "--name", "x", "--listen", "127.0.0.1:0"); err == nil {
			t.Fatalf("a daemon started with %q in its config file:\n%s", bad, out)
		}
		out, err := l.try("reload", "--data-dir", d.dir)
		if err == nil {
			t.Errorf("reload of a config file holding %q (refused at start) succeeded: %s", bad, strings.TrimSpace(out))
		} else if !strings.Contains(out, "d.conf:3") || !strings.Contains(out, "kept") {
			t.Errorf("reload of a config file holding %q: %q, want it to name d.conf:3 and say the policy in force is kept", bad, strings.TrimSpace(out))
		}
		if out, err := l.try("policy", "check", "b", "ssh", "--data-dir", d.dir); err == nil {
			t.Errorf("after the reload of a file holding %q, the new policy line is in force: %s", bad, strings.TrimSpace(out))
		}
		writeConfig(t, conf, "policy = allow dial from=* service=web")
		d.cli("reload")
	}
}
