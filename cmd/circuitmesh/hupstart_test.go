package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPDuringStartReloadsOnceUp: SIGHUP is how the shipped systemd
// unit reloads (ExecReload=/bin/kill -HUP $MAINPID, Type=simple, so
// `systemctl reload` may come right after `systemctl start` returns), and
// docs/SECURITY.md tells operators to reload with it. Until a Go program
// asks for SIGHUP, SIGHUP ends it (exit status 129, no log line, and no
// restart under Restart=on-failure): the daemon must ask for it before
// it starts anything, and handle one that came during its start by
// reloading once the node is up. Here SIGHUP is sent as soon as the
// daemon wrote its first log line, well before its start ends (before,
// it asked for SIGHUP only once everything was up), as a reload right
// after a start would; the daemon must survive and log the reload.
func TestSIGHUPDuringStartReloadsOnceUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	dir := filepath.Join(l.dir, "d")
	l.cli("cert", "issue", "d", "--ca-dir", l.ca, "--out", dir)
	pol := filepath.Join(l.dir, "d.policy")
	if err := os.WriteFile(pol, []byte("allow dial from=a service=echo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const tries = 5
	died := 0
	for i := range tries {
		os.Remove(filepath.Join(dir, adminSocketName))
		var log syncBuffer
		cmd := exec.Command(l.bin, "run", "--data-dir", dir, "--listen", "127.0.0.1:0", "--policy-file", pol)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(10 * time.Second)
		for log.String() == "" && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		cmd.Process.Signal(syscall.SIGHUP)
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGHUP {
					died++
					t.Logf("try %d: the daemon was killed by SIGHUP during its start; it had logged %d bytes", i, len(log.String()))
					continue
				}
			}
			t.Fatalf("try %d: the daemon exited: %v\n%s", i, err, log.String())
		case <-time.After(2 * time.Second):
			t.Logf("try %d: the daemon survived", i)
			for deadline := time.Now().Add(20 * time.Second); !strings.Contains(log.String(), "identity reloaded"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("try %d: the daemon survived a SIGHUP sent during its start but never reloaded:\n%s", i, log.String())
					break
				}
			}
			if n := strings.Count(log.String(), "identity reloaded"); n != 1 {
				t.Errorf("try %d: one SIGHUP during start made %d reloads, want 1:\n%s", i, n, log.String())
			}
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	}
	if died > 0 {
		t.Errorf("%d of %d daemons sent SIGHUP (a reload) at their first log line were killed by it (status 129)", died, tries)
	}
}
