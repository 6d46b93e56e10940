package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
)

// exitCode runs the binary and returns its exit status and output.
func (l *lab) exitCode(args ...string) (int, string) {
	l.t.Helper()
	out, err := l.try(args...)
	if err == nil {
		return 0, out
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		l.t.Fatalf("circuitmesh %s: %v", strings.Join(args, " "), err)
	}
	return ee.ExitCode(), out
}

// TestInvalidArgumentsCheckedByTheDaemonExitTwo: an operator scripts
// `if circuitmesh policy check --group ops alice ssh`: its help says exit
// status 1 means "denied", and the README says a bad command line (an
// invalid argument) exits 2. A mistyped group ("Ops": group names are
// lower case) is checked by the daemon, which answers "bad request": the
// command exited 1, and the script read the typo as a denial. The same
// held for the other arguments the daemon alone checks (`link-cost Bravo
// 100`), and `ping ""` said "no route to ". Now all exit 2.
func TestInvalidArgumentsCheckedByTheDaemonExitTwo(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "")
	for _, args := range [][]string{
		{"policy", "check", "--group", "Ops", "alice", "ssh"},
		{"policy", "check", "--relay", "--to-group", "Ops", "alice", "bob"},
		{"link-cost", "Bravo", "100"},
		{"ping", "", "-c", "1"},
	} {
		code, out := l.exitCode(append(args, "--data-dir", a.dir)...)
		if code != 2 {
			t.Errorf("circuitmesh %q: exit status %d, want 2 (invalid argument):\n%s", args, code, out)
		}
	}
}

// TestPolicyCheckToGroupWithoutRelayIsRefused: `circuitmesh policy check
// --to-group ops alice ssh` (forgetting --relay) answered about a dial,
// exited 0 and said nothing of the --to-group it did not use. Now a usage
// error.
func TestPolicyCheckToGroupWithoutRelayIsRefused(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "")
	code, out := l.exitCode("policy", "check", "--to-group", "ops", "alice", "ssh", "--data-dir", a.dir)
	if code != 2 {
		t.Fatalf("policy check --to-group without --relay: exit status %d, want 2 (the flag only means something with --relay):\n%s", code, out)
	}
}

// TestRunNamesTheDamagedIdentityFile: an operator keeps the CA
// certificate outside the data dir (--ca FILE) and that file is damaged.
// `run` said "load identity <data-dir>/node.crt: CA certificate: no
// CERTIFICATE PEM block", never naming the file that is broken; the same
// for a damaged node.key. Now the error names it.
func TestRunNamesTheDamagedIdentityFile(t *testing.T) {
	l := newLab(t, "e2e")
	dir := filepath.Join(l.dir, "a")
	l.cli("cert", "issue", "a", "--ca-dir", l.ca, "--out", dir)
	badCA := filepath.Join(l.dir, "elsewhere-ca.pem")
	if err := os.WriteFile(badCA, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := l.exitCode("run", "--data-dir", dir, "--listen", "127.0.0.1:0", "--ca", badCA)
	if code == 0 || !strings.Contains(out, badCA) {
		t.Errorf("run with a damaged --ca %s: exit %d, want the error to name that file:\n%s", badCA, code, out)
	}

	keyDir := filepath.Join(l.dir, "b")
	l.cli("cert", "issue", "b", "--ca-dir", l.ca, "--out", keyDir)
	badKey := filepath.Join(keyDir, "node.key")
	if err := os.WriteFile(badKey, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out = l.exitCode("run", "--data-dir", keyDir, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out, badKey) {
		t.Errorf("run with a damaged %s: exit %d, want the error to name that file:\n%s", badKey, code, out)
	}
}

// TestConfigFileSettingASingleValuedFlagTwiceIsRefused: a config file
// that sets a single-valued flag twice (an operator appends "listen =
// ..." without seeing the earlier line) was taken, the last line winning
// without a word. Repeatable flags (link, expose...) are meant to
// repeat; listen is not, and the second line is refused, named.
func TestConfigFileSettingASingleValuedFlagTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "node.conf", "insecure = true\nname = a\nlisten = 127.0.0.1:4242\nlisten = 127.0.0.1:5252\n")
	d, err := parseRun(t, "--config", cfg)
	if err == nil {
		t.Fatalf("config file with listen twice was accepted, listening on %s; want an error naming line 4", d.node.ListenAddr)
	}
	if !strings.Contains(err.Error(), "node.conf:4") {
		t.Fatalf("error %q does not name the repeated line", err)
	}
}

// TestControlCommandsDuringDrainSayTheDaemonIsShuttingDown: while the
// daemon drains after SIGTERM (a circuit still open), an operator runs
// `circuitmesh forward` or `circuitmesh expose` on it. Refusing is right,
// but the message was "use of closed network connection", which says
// nothing of the daemon shutting down.
func TestControlCommandsDuringDrainSayTheDaemonIsShuttingDown(t *testing.T) {
	l := newLab(t, "e2e")
	b := l.start("b", "")
	a := l.start("a", "", "--link", b.addr, "--drain-timeout", "2m")
	a.waitRoute(t, "b", anyRoute)

	// Hold a circuit open through a's admin socket so the drain waits.
	dial := exec.Command(l.bin, "dial", "b", "echo", "--data-dir", a.dir)
	stdin, err := dial.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	dial.Stdout, dial.Stderr = &syncBuffer{}, &syncBuffer{}
	if err := dial.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); dial.Process.Kill(); dial.Wait() })
	waitUntil(t, "a circuit open on a", func() bool { return a.status(t).Circuits > 0 })

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a to report draining", func() bool {
		out, err := l.try("status", "--data-dir", a.dir)
		return err == nil && strings.Contains(out, "draining")
	})
	for _, args := range [][]string{
		{"forward", "127.0.0.1:0", "b/echo"},
		{"expose", "web", "127.0.0.1:9"},
	} {
		code, out := l.exitCode(append(args, "--data-dir", a.dir)...)
		if code == 0 {
			t.Errorf("%v while draining succeeded:\n%s", args, out)
			continue
		}
		if strings.Contains(out, "use of closed network connection") ||
			!(strings.Contains(out, "draining") || strings.Contains(out, "shutting down")) {
			t.Errorf("%v while draining: the message does not say the daemon is shutting down:\n%s", args, out)
		}
	}
	stdin.Close()
	select {
	case <-a.exited:
	case <-time.After(time.Minute):
		t.Fatal("a did not exit after its circuit ended")
	}
}

// TestForwardToAPortTheKernelPicksTwice: `circuitmesh forward
// 127.0.0.1:0 DEST` lets the kernel pick a free port, so a second one
// binds another port and forwards too; it was refused as "127.0.0.1:0
// is already forwarded", the forward being known by the address asked
// for rather than the one bound.
func TestForwardToAPortTheKernelPicksTwice(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "")
	first, second := a.forward(t, "a/echo"), a.forward(t, "a/echo")
	if first == second {
		t.Fatalf("two forwards of 127.0.0.1:0 both report %s", first)
	}
	for _, addr := range []string{first, second} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("forward %s: %v", addr, err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		line := "through " + addr + "\n"
		if _, err := io.WriteString(c, line); err != nil {
			t.Fatal(err)
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if got != line {
			t.Fatalf("echo through the forward %s: %q, %v", addr, got, err)
		}
	}
	// Each is unforwarded by its own bound address.
	a.cli("unforward", second)
	var svcs admin.Services
	if err := a.client().Get(context.Background(), admin.PathServices, nil, &svcs); err != nil {
		t.Fatal(err)
	}
	if len(svcs.Forwards) != 1 || svcs.Forwards[0].Listen != first {
		t.Fatalf("after unforward %s: forwards %+v, want only %s", second, svcs.Forwards, first)
	}
}

// TestForwardToAListenHostThatDoesNotResolveExitsTwo: `forward
// no-such-host.invalid:8080 a/echo` names a host that does not resolve,
// the mistake `expose web no-such-host.invalid:8080` exits 2 for (README:
// `expose` and `forward` check that a host resolves). forward passed it
// to the daemon, whose listen failed: exit 1, and `run --forward` with it
// failed at start, exit 1 too. Now both exit 2 like expose, saying the
// host does not resolve, and nothing is forwarded.
func TestForwardToAListenHostThatDoesNotResolveExitsTwo(t *testing.T) {
	l := newLab(t, "e2e")
	a := l.start("a", "")
	const host = "no-such-host.invalid"
	for _, args := range [][]string{
		{"expose", "web", host + ":8080", "--data-dir", a.dir},
		{"forward", host + ":8080", "a/echo", "--data-dir", a.dir},
		{"run", "--data-dir", a.dir, "--admin", filepath.Join(l.dir, "other.sock"), "--listen", "127.0.0.1:0", "--expose", "web=" + host + ":8080"},
		{"run", "--data-dir", a.dir, "--admin", filepath.Join(l.dir, "other.sock"), "--listen", "127.0.0.1:0", "--forward", host + ":8080=a/echo"},
	} {
		code, out := l.exitCode(args...)
		if code != 2 || !strings.Contains(out, "does not resolve") {
			t.Errorf("%v: exit status %d, want 2 saying the host does not resolve:\n%s", args, code, out)
		}
	}
	var svcs admin.Services
	if err := a.client().Get(context.Background(), admin.PathServices, nil, &svcs); err != nil || len(svcs.Forwards) != 0 || len(svcs.Exposed) != 0 {
		t.Fatalf("services of a after the refusals: %+v, %v; want none", svcs, err)
	}
}
