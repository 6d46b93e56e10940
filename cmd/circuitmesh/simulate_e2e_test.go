package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `simulate --virtual` runs the scenario on a fake clock: a ten-minute
// wait passes in far less real time, the report says which figures are
// virtual, and stdout holds the report alone.
func TestE2ESimulateVirtual(t *testing.T) {
	bin := binary(t)
	script := filepath.Join(t.TempDir(), "long-wait.sim")
	if err := os.WriteFile(script, []byte(`
nodes a b c
link a-b b-c
wait converged
wait 10m
expect route a c hops=2 via=b within=0s
transfer a c 64KiB
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"mem", "quic"} {
		t.Run(backend, func(t *testing.T) {
			// Far less than the ten minutes the script waits, far more than
			// the run needs on a loaded machine.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "simulate", "--virtual", "--json", "--backend", backend, script)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Fatalf("simulate --virtual: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
			}
			var rep struct {
				Virtual  bool  `json:"virtual"`
				Passed   int   `json:"passed"`
				Failed   int   `json:"failed"`
				Duration int64 `json:"duration_ns"`
				Wall     int64 `json:"wall_ns"`
				Steps    []struct {
					Step    string `json:"step"`
					Elapsed int64  `json:"elapsed_ns"`
				} `json:"steps"`
			}
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("stdout is not one JSON report: %v\n%s", err, out.String())
			}
			// Without --log-level nothing is logged (docs/SIMULATE.md):
			// QUIC wrote that a simulated connection "doesn't allow
			// setting of receive buffer size".
			if errb.Len() > 0 {
				t.Errorf("simulate without --log-level wrote to stderr:\n%s", errb.String())
			}
			if !rep.Virtual || rep.Passed != 1 || rep.Failed != 0 {
				t.Errorf("report: virtual %v, %d passed, %d failed; want a virtual run with 1 pass\n%s", rep.Virtual, rep.Passed, rep.Failed, out.String())
			}
			for _, st := range rep.Steps {
				if st.Step == "wait 10m" && time.Duration(st.Elapsed) != 10*time.Minute {
					t.Errorf("wait 10m took %v of virtual time, want exactly 10m", time.Duration(st.Elapsed))
				}
			}
			if rep.Duration < int64(10*time.Minute) || rep.Wall >= rep.Duration {
				t.Errorf("run: %v virtual, %v wall; want at least 10m virtual and less wall", time.Duration(rep.Duration), time.Duration(rep.Wall))
			}
		})
	}
}

// A scenario that fails in virtual time exits 1 with its report on stdout.
func TestE2ESimulateVirtualFailure(t *testing.T) {
	out, errb, err := runSimulateScript(t, "nodes a b\nlink a-b\nwait converged\nexpect unreachable a b within=1m\n", nil, "--virtual", "--backend", "mem")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"in virtual time", "a still reaches b", "FAIL: 0 expectations passed, 1 steps failed, in 1m0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
}

// Before the first garbage collection there is no live heap to report:
// the progress lines say so rather than "heap 0.0 B live". GOGC=off keeps
// the collector from running in the process. Before, every line of such
// a run said the heap held 0.0 B.
func TestE2ESimulateProgressBeforeFirstCollection(t *testing.T) {
	_, errb, err := runSimulateScript(t, "nodes a b\nlink a-b\nwait converged\n", []string{"GOGC=off", "GOMEMLIMIT=off"}, "--progress", "--backend", "mem")
	if err != nil {
		t.Fatalf("simulate --progress: %v\nstderr:\n%s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d progress lines, want one per step (3):\n%s", len(lines), errb.String())
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, "  [heap: no collection yet]") {
			t.Errorf("progress line %q, want it to end saying no collection has measured the heap yet", l)
		}
	}
}

// runSimulateScript runs the binary's simulate with args on a scenario
// file holding src, env added to the environment, and returns its stdout,
// its stderr and how it ended.
func runSimulateScript(t *testing.T, src string, env []string, args ...string) (out, errb *bytes.Buffer, err error) {
	t.Helper()
	bin := binary(t)
	script := filepath.Join(t.TempDir(), "scenario.sim")
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"simulate"}, args...), script)...)
	cmd.Env = append(os.Environ(), env...)
	out, errb = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	return out, errb, cmd.Run()
}
