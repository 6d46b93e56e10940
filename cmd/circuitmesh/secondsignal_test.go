package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalDuringDrainEndsTheDaemon: on SIGTERM/SIGINT the
// daemon drains for --drain-timeout while circuits are open; a second
// signal (a second Ctrl-C) ends the drain at once: the daemon cuts what
// is open and exits, rather than wait out the whole drain (here 60 s).
func TestSecondSignalDuringDrainEndsTheDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a daemon")
	}
	l := newLab(t, "e2e")
	a := l.start("a", "", "--drain-timeout", "60s")
	o := l.openDial(t, a, "a", "echo")
	o.echo(t, "hello")
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.waitLog(t, 1, "node draining")
	a.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon still draining 10 s after a second signal (drain timeout 60 s)")
	}
	// The drain was cut, circuits with it: exit status 1, as documented.
	if code := a.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(a.log.String(), "stopped without finishing the drain") {
		t.Fatalf("after a second signal: exit status %d, want 1 and the cut drain reported:\n%s", code, a.log.String())
	}
}
