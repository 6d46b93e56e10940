package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMDuringStartExitsCleanly: SIGTERM (systemctl stop, docker
// stop, Ctrl-C) while the daemon starts is a stop the operator asked
// for: the daemon exits 0 (or dies of the signal itself, before it took
// it), not 1 with "start node: ... terminated", which systemd would
// report as a failed unit.
func TestSIGTERMDuringStartExitsCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	bin := binary(t)
	dir := t.TempDir()
	deadline := time.Now().Add(40 * time.Second)
	for i := 0; i < 200 && time.Now().Before(deadline); i++ {
		delay := time.Duration(5+i%40) * time.Millisecond
		cmd := exec.Command(bin, "run", "--insecure", "--name", "a", "--listen", "127.0.0.1:0",
			"--data-dir", filepath.Join(dir, "d"), "--drain-timeout", "0")
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled():
		default:
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			t.Fatalf("SIGTERM %v after the start (try %d): %v, last line %q; want exit 0", delay, i+1, err, lines[len(lines)-1])
		}
	}
}
