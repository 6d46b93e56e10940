package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeConfig writes a daemon config file.
func writeConfig(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// openDial runs `circuitmesh dial` and keeps it open: each line written
// comes back from the echo service.
type openDial struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	errb *syncBuffer
	done chan error
}

func (l *lab) openDial(t *testing.T, from *daemon, peer, service string) *openDial {
	t.Helper()
	o := &openDial{cmd: exec.Command(l.bin, "dial", peer, service, "--data-dir", from.dir), errb: &syncBuffer{}, done: make(chan error, 1)}
	var err error
	if o.in, err = o.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := o.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	o.out = bufio.NewReader(stdout)
	o.cmd.Stderr = o.errb
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		o.cmd.Process.Kill()
		<-exited
	})
	go func() {
		err := o.cmd.Wait()
		close(exited)
		o.done <- err
	}()
	return o
}

// echo writes a line and waits for it to come back.
func (o *openDial) echo(t *testing.T, line string) {
	t.Helper()
	if err := o.tryEcho(line, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// tryEcho writes a line and waits up to within for it to come back.
func (o *openDial) tryEcho(line string, within time.Duration) error {
	if _, err := fmt.Fprintln(o.in, line); err != nil {
		return fmt.Errorf("write to dial: %v (stderr %q)", err, o.errb.String())
	}
	got := make(chan string, 1)
	go func() {
		s, _ := o.out.ReadString('\n')
		got <- s
	}()
	select {
	case s := <-got:
		if s != line+"\n" {
			return fmt.Errorf("echo of %q: %q (stderr %q)", line, s, o.errb.String())
		}
		return nil
	case <-time.After(within):
		return fmt.Errorf("no echo of %q in %v (stderr %q)", line, within, o.errb.String())
	}
}

// A daemon takes its authorization policy from its config file, explains
// it with `policy check`, and rereads it on `reload` and SIGHUP: circuits
// still allowed stay open, the one no longer allowed is reset, and a
// policy that does not parse is refused.
func TestE2EPolicyFromConfigFileCheckAndReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	for name, group := range map[string]string{"a": "ops", "b": "web"} {
		l.cli("cert", "issue", name, "--ca-dir", l.ca, "--out", filepath.Join(l.dir, name), "--group", group)
	}
	a := l.start("a", "")
	b := l.start("b", "")
	conf := filepath.Join(l.dir, "d.conf")
	writeConfig(t, conf, "# no policy yet", "link = "+a.addr, "link = "+b.addr)
	d := l.start("d", "", "--config", conf)
	a.waitRoute(t, "d", anyRoute)
	b.waitRoute(t, "d", anyRoute)
	d.waitRoute(t, "a", anyRoute)
	d.waitRoute(t, "b", anyRoute)
	d.waitLog(t, 1, "level=WARN", "no authorization policy")

	dial := func(from *daemon) (string, error) {
		cmd := exec.Command(l.bin, "dial", "d", "echo", "--data-dir", from.dir)
		cmd.Stdin = strings.NewReader("hi\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := dial(b); err != nil || out != "hi\n" {
		t.Fatalf("b dials d/echo with no policy: %q, %v", out, err)
	}
	// Policy lines added to the config file take effect on reload.
	writeConfig(t, conf,
		"# d lets ops in",
		"link = "+a.addr,
		"link = "+b.addr,
		"policy = allow dial from=group:ops service=echo")
	d.cli("reload")
	d.waitLog(t, 1, "authorization policy replaced", `dial="default deny"`)
	if out, err := dial(a); err != nil || out != "hi\n" {
		t.Fatalf("a (ops) dials d/echo: %q, %v", out, err)
	}
	if out, err := dial(b); err == nil || !strings.Contains(out, "refused by policy") || !strings.Contains(out, "default deny") {
		t.Fatalf("b dials d/echo: %q, %v; want refused by policy, default deny", out, err)
	}
	out := d.cli("policy", "check", "a", "echo")
	if !strings.Contains(out, "allowed: a to dial echo by rule at line 4 (allow dial from=group:ops service=echo)") ||
		!strings.Contains(out, "source a: groups ops (from the certificate that attested its routes)") {
		t.Fatalf("policy check a echo:\n%s", out)
	}
	out, err := l.try("policy", "check", "b", "echo", "--data-dir", d.dir)
	if err == nil || !strings.Contains(out, "denied: b to dial echo (no dial rule matches: default deny)") {
		t.Fatalf("policy check b echo: %v\n%s", err, out)
	}
	if out := d.cli("policy", "check", "--group", "ops", "stranger", "echo"); !strings.Contains(out, "allowed") || !strings.Contains(out, "groups ops (as given)") {
		t.Fatalf("policy check --group ops stranger echo:\n%s", out)
	}
	if out := d.cli("policy", "check", "--relay", "b", "a"); !strings.Contains(out, "no relay rules: everything allowed") {
		t.Fatalf("policy check --relay b a:\n%s", out)
	}

	// Reload with b allowed too: a's open circuit stays, b gets in.
	held := l.openDial(t, a, "d", "echo")
	held.echo(t, "before the reload")
	writeConfig(t, conf,
		"# d lets ops and b in",
		"link = "+a.addr,
		"link = "+b.addr,
		"policy = allow dial from=group:ops service=echo",
		"policy = allow dial from=b service=echo")
	d.cli("reload")
	if out, err := dial(b); err != nil || out != "hi\n" {
		t.Fatalf("b dials d/echo after the reload: %q, %v", out, err)
	}
	held.echo(t, "after the reload")

	// A policy that does not parse is refused and the current one kept.
	writeConfig(t, conf, "link = "+a.addr, "link = "+b.addr, "policy = allow teleport from=b")
	if out, err := l.try("reload", "--data-dir", d.dir); err == nil || !strings.Contains(out, "policy line 3") {
		t.Fatalf("reload of a bad policy: %v\n%s", err, out)
	}
	if out, err := dial(b); err != nil || out != "hi\n" {
		t.Fatalf("b dials d/echo after a refused reload: %q, %v", out, err)
	}

	// A config file whose policy lines are gone (cut short while being
	// rewritten) is refused too: no rules would let everyone in. The
	// daemon warns, `reload` says how to really allow everything, and the
	// rules in force stay.
	writeConfig(t, conf, "link = "+a.addr, "link = "+b.addr)
	if out, err := l.try("reload", "--data-dir", d.dir); err == nil ||
		!strings.Contains(out, "the config file "+conf+" has no rules; keeping the 2 rules in force") || !strings.Contains(out, `"allow dial" and "allow relay"`) {
		t.Fatalf("reload of a config file without policy lines: %v\n%s", err, out)
	}
	d.waitLog(t, 1, "level=WARN", "reload failed", "has no rules")
	if out, err := l.try("policy", "check", "--group", "web", "stranger", "echo", "--data-dir", d.dir); err == nil || !strings.Contains(out, "default deny") {
		t.Fatalf("policy check after a refused empty policy: %v\n%s", err, out)
	}

	// SIGHUP with ops no longer allowed: a's open circuit is reset.
	writeConfig(t, conf, "link = "+a.addr, "link = "+b.addr, "policy = allow dial from=b service=echo")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-held.done:
		if err == nil || !strings.Contains(held.errb.String(), "refused by policy") {
			t.Fatalf("a's circuit after SIGHUP: %v, stderr %q; want a reset refused by policy", err, held.errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("a's circuit outlived the policy that denies it\n%s", d.log.String())
	}
	d.waitLog(t, 1, "closing a circuit the new policy denies", "a to dial echo")
	if out, err := dial(a); err == nil || !strings.Contains(out, "refused by policy") {
		t.Fatalf("a dials d/echo after SIGHUP: %q, %v", out, err)
	}
}
