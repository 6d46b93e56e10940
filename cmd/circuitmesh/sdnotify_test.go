package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonTellsServiceManagerItsState: run under a service manager that
// waits for readiness (systemd, Type=notify, as deploy/systemd's unit
// is), the daemon says READY=1 once it is up and handles SIGHUP (so that
// the manager's ExecReload, sent only from then on, reloads instead of
// killing a daemon still starting), RELOADING=1 and READY=1 around a
// SIGHUP's reload, and STOPPING=1 on SIGTERM; a NOTIFY_SOCKET that names
// nothing costs a warning, not the daemon.
func TestDaemonTellsServiceManagerItsState(t *testing.T) {
	dir, err := os.MkdirTemp("", "sd") // a socket path must be short
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	next := func(want string) string {
		t.Helper()
		ln.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s from the daemon: %v", want, err)
		}
		msg := string(buf[:n])
		if !strings.Contains("\n"+msg+"\n", "\n"+want+"\n") {
			t.Fatalf("the daemon said %q, want %s", msg, want)
		}
		return msg
	}

	l := newLab(t, "sd")
	d := l.startWith([]string{"NOTIFY_SOCKET=" + path}, "a", "")
	if msg := next("READY=1"); !strings.Contains(msg, "STATUS=running as a in mesh sd on "+d.addr) {
		t.Errorf("the ready message %q does not say what runs where", msg)
	}
	// At once after READY=1, as systemd's reload would come.
	d.cmd.Process.Signal(syscall.SIGHUP)
	if msg := next("RELOADING=1"); !strings.Contains(msg, "MONOTONIC_USEC=") {
		t.Errorf("the reloading message %q has no MONOTONIC_USEC, which Type=notify-reload requires", msg)
	}
	if msg := next("READY=1"); !strings.Contains(msg, "last reload applied") {
		t.Errorf("the message after the reload %q does not say it applied", msg)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop on SIGTERM")
	}
	if !d.cmd.ProcessState.Success() {
		t.Errorf("the daemon exited %v after SIGTERM\n%s", d.cmd.ProcessState, d.log.String())
	}

	b := l.startWith([]string{"NOTIFY_SOCKET=" + filepath.Join(dir, "none")}, "b", "")
	b.logged(t, "could not tell the service manager the daemon's state", "err")
	b.status(t)
}
