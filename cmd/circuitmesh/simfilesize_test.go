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
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("simulate /dev/zero succeeded: %s", out.String())
		}
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(out.String(), "larger than") {
			t.Fatalf("simulate /dev/zero: exit status %d, %q; want 1 and the file refused as too large", code, out.String())
		}
		t.Logf("refused: %v: %s", err, out.String())
	case <-time.After(1500 * time.Millisecond):
		cmd.Process.Kill()
		<-done
		t.Fatalf("simulate /dev/zero still reading after 1.5 s (killed): the scenario file is read without a bound")
	}
}
