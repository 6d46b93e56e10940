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
		reloadRefused(t, d, bad, "--config", conf)
		writeConfig(t, conf, "policy = allow dial from=* service=web")
		d.cli("reload")
	}
}

// TestReloadRefusesABadConfigFileBesidePolicyFile: with --policy-file
// and --config both, a reload rechecks the config file too: one the
// daemon would refuse at start (an unknown flag, a bad value, policy
// lines beside --policy-file) is refused, naming its line, and the
// policy in force is kept, though the policy file itself is good.
func TestReloadRefusesABadConfigFileBesidePolicyFile(t *testing.T) {
	l := newLab(t, "e2e")
	conf, pf := filepath.Join(l.dir, "d.conf"), filepath.Join(l.dir, "d.policy")
	writeConfig(t, conf, "# the daemon's flags", "log-level = debug")
	writeConfig(t, pf, "allow dial from=* service=web")
	d := l.start("d", "", "--config", conf, "--policy-file", pf)

	for _, bad := range []string{"bogus-flag = 1", "log-level = loud", "policy = allow dial from=* service=ssh"} {
		writeConfig(t, conf, "# the daemon's flags", "log-level = debug", bad)
		writeConfig(t, pf, "allow dial from=* service=web", "allow dial from=* service=ssh")
		reloadRefused(t, d, bad, "--config", conf, "--policy-file", pf)
		writeConfig(t, conf, "# the daemon's flags", "log-level = debug")
		writeConfig(t, pf, "allow dial from=* service=web")
		d.cli("reload")
	}
}

// reloadRefused checks what a reload of d does once its config file
// holds bad on line 3 and a new policy line allows ssh: the daemon
// would refuse the file at start (started with args), the reload is
// refused naming d.conf:3 and saying the policy in force is kept, and
// ssh is still not allowed.
func reloadRefused(t *testing.T, d *daemon, bad string, args ...string) {
	t.Helper()
	l := d.lab
	run := append([]string{"run", "--data-dir", filepath.Join(l.dir, "other"), "--insecure", "--name", "x", "--listen", "127.0.0.1:0"}, args...)
	if out, err := l.try(run...); err == nil {
		t.Fatalf("a daemon started with %q in its config file:\n%s", bad, out)
	}
	out, err := l.try("reload", "--data-dir", d.dir)
	if err == nil {
		t.Errorf("reload of a config file holding %q (refused at start) succeeded: %s", bad, strings.TrimSpace(out))
	} else if !strings.Contains(out, "d.conf:3") || !strings.Contains(out, "kept") {
		t.Errorf("reload of a config file holding %q: %q, want it to name d.conf:3 and say the policy in force is kept", bad, strings.TrimSpace(out))
	}
	if out, err := l.try("policy", "check", "b", "ssh", "--data-dir", d.dir); err == nil {
		t.Errorf("after the reload of a config file holding %q, the new policy line is in force: %s", bad, strings.TrimSpace(out))
	}
}

// TestAddressesTheNodeRefusesAreABadCommandLine: a --join entry with an
// empty name or a port out of range (`--join 10.0.0.2:0`, `--join dns:`),
// a --link to port 0 and a --listen or --gossip port above 65535 are
// refused by the daemon's own checks, exit status 2, naming the flag, as
// the README says of an invalid argument. Before, node.New refused them
// and the daemon exited 1 naming the Go field (`Discovery.Join[0]`,
// `StaticLinks[0]`), and a reload took a config file whose join line the
// daemon refused at start.
func TestAddressesTheNodeRefusesAreABadCommandLine(t *testing.T) {
	l := newLab(t, "e2e")
	run := []string{"run", "--data-dir", filepath.Join(l.dir, "x"), "--insecure", "--name", "x"}
	for _, tc := range []struct {
		flag, value string
		rest        []string
	}{
		{"--join", "10.0.0.2:0", []string{"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"}},
		{"--join", "dns:", []string{"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"}},
		{"--join", "dns+srv:", []string{"--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0"}},
		{"--link", "10.0.0.2:0", []string{"--listen", "127.0.0.1:0"}},
		{"--listen", "127.0.0.1:99999", nil},
		{"--gossip", "127.0.0.1:99999", []string{"--listen", "127.0.0.1:0"}},
		{"--gossip", "127.0.0.1:domain", []string{"--listen", "127.0.0.1:0"}}, // a UDP service name, which gossip takes not
	} {
		args := append(append(append([]string{}, run...), tc.rest...), tc.flag, tc.value)
		code, out := l.exitCode(args...)
		if code != 2 || !strings.Contains(out, tc.flag) || !strings.Contains(out, `"`+tc.value+`"`) {
			t.Errorf("run %s %s: exit status %d, want 2 and the flag and its value named:\n%s", tc.flag, tc.value, code, out)
		}
	}

	conf := filepath.Join(l.dir, "d.conf")
	writeConfig(t, conf, "policy = allow dial from=* service=web")
	d := l.start("d", "", "--config", conf, "--gossip", "127.0.0.1:0")
	bad := "join = 10.0.0.2:0"
	writeConfig(t, conf, "policy = allow dial from=* service=web", "policy = allow dial from=* service=ssh", bad)
	reloadRefused(t, d, bad, "--config", conf, "--gossip", "127.0.0.1:0")
}
