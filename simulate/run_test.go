package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runFile parses and runs a scenario from testdata.
func runFile(t *testing.T, file string, backend Backend) *Report {
	t.Helper()
	return runParsed(t, parseFile(t, file), backend)
}

// parseFile parses testdata/file.
func parseFile(t *testing.T, file string) *Script {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(file, string(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// patient gives s's expectations (their default 5 s or a script's own
// within=) and waits for convergence that use the default (30 s) at
// least two minutes instead. A crashed node or a cut
// link is found dead after the detector's allowance, which grows to
// several seconds on a CPU-starved machine (links, "Adaptive failure
// detection"), and the retraction follows: on the QUIC backend the test
// waits as long as such a machine needs for the same outcomes.
func patient(s *Script) *Script {
	for i := range s.Steps {
		st := &s.Steps[i]
		switch {
		case st.Op == OpExpectRoute || st.Op == OpExpectUnreachable,
			st.Op == OpWaitConverged && st.Duration == DefaultConvergeTimout:
			st.Duration = max(st.Duration, 2*time.Minute)
		}
	}
	return s
}

func runScript(t *testing.T, name, src string, backend Backend) *Report {
	t.Helper()
	s, err := Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	return runParsed(t, s, backend)
}

func runParsed(t *testing.T, s *Script, backend Backend) *Report {
	t.Helper()
	name := s.Name
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, s, Config{Backend: backend}, &progress)
	if err != nil {
		t.Fatalf("run %s: %v", name, err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", table.String())
	return rep
}

func requireOK(t *testing.T, rep *Report) {
	t.Helper()
	if !rep.OK() {
		for _, s := range rep.Steps {
			if s.Status == StatusFail {
				t.Errorf("line %d %q failed: %s", s.Line, s.Step, s.Error)
			}
		}
	}
}

func TestDiamondFailover(t *testing.T) {
	s := parseFile(t, "diamond-failover.sim")
	rep := runParsed(t, patient(s), BackendQUIC)
	requireOK(t, rep)
	if rep.Passed != 4 {
		t.Errorf("%d expectations passed, want 4", rep.Passed)
	}
	names := map[string]int{}
	for _, m := range rep.Measurements {
		names[m.Name]++
		switch {
		case m.Name == "longer routes":
			if m.Value < 0 {
				t.Errorf("measurement %+v is negative", m)
			}
		case m.Name == "stretch":
			if m.Value < 1 {
				t.Errorf("measurement %+v: a route cheaper than the shortest path", m)
			}
		case m.Value <= 0:
			t.Errorf("measurement %+v is not positive", m)
		}
	}
	if names["reroute"] == 0 || names["throughput"] != 2 || names["open"] != 2 || names["convergence"] != 2 {
		t.Errorf("measurements %v: want convergence, reroute, throughput and open", names)
	}
	for _, s := range rep.Steps {
		if s.Transfer != nil && s.Line == 9 && strings.Join(s.Transfer.Path, "-") != "a-b-d-e" {
			t.Errorf("first transfer took %v, want a-b-d-e", s.Transfer.Path)
		}
		if s.Transfer != nil && s.Line == 13 && strings.Join(s.Transfer.Path, "-") != "a-c-d-e" {
			t.Errorf("transfer after the kill took %v, want a-c-d-e", s.Transfer.Path)
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Passed != rep.Passed || len(back.Steps) != len(rep.Steps) {
		t.Fatalf("JSON report does not round-trip: %v", err)
	}
}

func TestRingPartitionHeal(t *testing.T) {
	s := parseFile(t, "ring-partition-heal.sim")
	rep := runParsed(t, patient(s), BackendQUIC)
	requireOK(t, rep)
	if rep.Passed != 6 {
		t.Errorf("%d expectations passed, want 6", rep.Passed)
	}
}

// A scenario whose expectations are false must be reported as failed, with
// the reason, and the run must go on.
func TestFalseExpectationsFail(t *testing.T) {
	rep := runScript(t, "false.sim", `
nodes a b c
link a-b b-c
wait converged
expect route a c hops=1 within=300ms
expect route a c via=c within=0s
expect unreachable a b within=200ms
expect route a c hops=2 via=b
kill b
transfer a c 1KiB within=1s    # no path left: the step fails when it runs
wait converged
expect route a c within=300ms
`, BackendQUIC)
	if rep.OK() {
		t.Fatal("a run with false expectations reported OK")
	}
	want := map[int]string{
		5:  "a reaches c in 2 hops, want 1",
		6:  "a reaches c via b, want via c",
		7:  "a still reaches b",
		10: "transfer 1024 bytes a→c",
		12: "a does not reach c, for 300ms",
	}
	for _, s := range rep.Steps {
		msg, bad := want[s.Line]
		switch {
		case bad && (s.Status != StatusFail || !strings.Contains(s.Error, msg)):
			t.Errorf("line %d: %s %q, want a failure containing %q", s.Line, s.Status, s.Error, msg)
		case !bad && s.Status == StatusFail:
			t.Errorf("line %d failed: %s", s.Line, s.Error)
		}
	}
	if rep.Failed != 5 || rep.Passed != 1 {
		t.Errorf("passed %d failed %d, want 1 and 5", rep.Passed, rep.Failed)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	if !strings.Contains(table.String(), "FAIL: 1 expectations passed, 5 steps failed") {
		t.Errorf("table verdict missing:\n%s", table.String())
	}
}

// Every example scenario passes on in-memory links.
func TestExamplesOnMem(t *testing.T) {
	files := []string{"diamond-failover.sim", "ring-partition-heal.sim", "random-30.sim"}
	if !testing.Short() {
		files = append(files, "random-100.sim")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			rep := runFile(t, f, BackendMem)
			requireOK(t, rep)
			if rep.Passed == 0 {
				t.Fatal("no expectation ran")
			}
		})
	}
}

func TestMemRejectsLoss(t *testing.T) {
	rep := runScript(t, "loss.sim", "nodes a b\nlink a-b loss=0.1\n", BackendMem)
	if rep.OK() || !strings.Contains(rep.Steps[1].Error, ErrUnsupported.Error()) {
		t.Fatalf("loss on the mem backend: %+v, want a failure saying it is unsupported", rep.Steps[1])
	}
}

func TestUnlinkSetAndRelinkOnMem(t *testing.T) {
	rep := runScript(t, "set.sim", `
nodes a b c
link a-b b-c latency=1ms
link a-c latency=5ms
wait converged
expect route a c via=b hops=2
set a-c latency=100us          # now the direct link is cheaper
expect route a c via=c hops=1
unlink a-c
expect route a c via=b
unlink a-b
expect unreachable a c
link a-b
expect route a c via=b
`, BackendMem)
	requireOK(t, rep)
	if rep.Passed != 5 {
		t.Fatalf("%d expectations passed, want 5", rep.Passed)
	}
}

func TestDefaultScriptIsTheDiamond(t *testing.T) {
	file, err := os.ReadFile(filepath.Join("testdata", "diamond-failover.sim"))
	if err != nil {
		t.Fatal(err)
	}
	if DefaultScript != string(file) {
		t.Fatal("DefaultScript is not testdata/diamond-failover.sim")
	}
	if _, err := Parse(DefaultScriptName, DefaultScript); err != nil {
		t.Fatal(err)
	}
}

// Transfers over lossy QUIC links arrive intact, and links report loss.
func TestLossyQUICTransfer(t *testing.T) {
	rep := runScript(t, "lossy.sim", `
nodes a b c
link a-b b-c latency=1ms loss=0.05
wait converged
transfer a c 1MiB
print links b
`, BackendQUIC)
	requireOK(t, rep)
	if tr := rep.Steps[3].Transfer; tr == nil || strings.Join(tr.Path, "-") != "a-b-c" {
		t.Fatalf("transfer %+v, want one over a-b-c", tr)
	}
	if out := rep.Steps[4].Output; !strings.Contains(out, "LOSS") || strings.Count(out, "\n") != 3 {
		t.Fatalf("print links b:\n%s\nwant a header and two links", out)
	}
}
