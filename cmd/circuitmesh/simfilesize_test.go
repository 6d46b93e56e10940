package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSimulateBoundsTheScenarioItReads: `circuitmesh simulate FILE`
// reads at most maxScenarioFile of FILE, so a wrong argument that never
// ends (/dev/zero, a FIFO, /dev/stdin of a stream) or a huge file is
// refused at once instead of growing memory without limit. The test
// stops the process after 1.5 s to spare the machine.
func TestSimulateBoundsTheScenarioItReads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	cmd := exec.Command(binary(t), "simulate", "--backend", "mem", "/dev/zero")
	out, err := exitsWithin(t, cmd, 1500*time.Millisecond, "simulate /dev/zero")
	if err == nil {
		t.Fatalf("simulate /dev/zero succeeded: %s", out)
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out, "larger than") {
		t.Fatalf("simulate /dev/zero: exit status %d, %q; want 1 and the file refused as too large", code, out)
	}
	t.Logf("refused: %v: %s", err, out)
}

// exitsWithin runs cmd, which should end of itself within d, and returns
// its output and Wait's error; once d has passed it kills cmd and fails
// the test: what is still reading reads without a bound.
func exitsWithin(t *testing.T, cmd *exec.Cmd, d time.Duration, what string) (string, error) {
	t.Helper()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s still reading after %v (killed): its input is read without a bound", what, d)
		return "", nil
	}
}
