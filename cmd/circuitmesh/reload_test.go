package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// waitLog waits until the daemon's log has n lines containing all words.
func (d *daemon) waitLog(t *testing.T, n int, words ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		count := 0
		for _, line := range strings.Split(d.log.String(), "\n") {
			ok := true
			for _, w := range words {
				ok = ok && strings.Contains(line, w)
			}
			if ok {
				count++
			}
		}
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %d log lines with %q\n%s", d.name, n, words, d.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A daemon whose certificate expires within a week warns at start; a
// renewed certificate is taken by `circuitmesh reload` and by SIGHUP
// without dropping the daemon's link; an expired one refuses to start.
func TestE2ECertificateRenewalAndExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	a := l.start("a", "")
	bdir := filepath.Join(l.dir, "b")
	l.cli("cert", "issue", "b", "--ca-dir", l.ca, "--out", bdir, "--validity", "48h")
	b := l.start("b", "", "--link", a.addr)
	b.waitLog(t, 1, "level=WARN", "node certificate expires soon")
	b.waitRoute(t, "a", anyRoute)

	l.cli("cert", "issue", "b", "--ca-dir", l.ca, "--out", bdir, "--validity", "720h", "--force")
	out, err := l.try("reload", "--data-dir", b.dir)
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	want := time.Now().Add(720 * time.Hour).UTC().Format("2006-01-02")
	if !strings.Contains(out, "certificate valid until "+want) {
		t.Fatalf("reload said %q, want validity until %s", out, want)
	}
	l.cli("cert", "issue", "b", "--ca-dir", l.ca, "--out", bdir, "--validity", "1440h", "--force")
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	b.waitLog(t, 2, "identity reloaded")
	if !lineWith(a.cli("links"), "b") {
		t.Fatal("the link a-b did not survive the reloads")
	}
	if strings.Contains(b.log.String(), "link down") {
		t.Fatalf("a reload dropped a link:\n%s", b.log.String())
	}

	// An expired certificate: the daemon refuses to start and says why.
	xdir := filepath.Join(l.dir, "x")
	ca, err := identity.LoadCA(l.ca)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.IssueAt("x", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.SaveIdentity(xdir, expired, false); err != nil {
		t.Fatal(err)
	}
	out, err = l.try("run", "--data-dir", xdir, "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(out, "node identity not valid now") {
		t.Fatalf("daemon with an expired certificate: %v\n%s", err, out)
	}
}
