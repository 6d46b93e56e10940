package simulate

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
)

// Test runs the scenario s in virtual time, on a new cluster configured by
// cfg, and returns its report. The cluster lives in a testing/synctest
// bubble: every timer of the nodes, of their links and of the simulated
// network runs on a fake clock that jumps forward whenever every goroutine
// of the cluster is blocked, so `wait 60s` or a 30 s routing timeout take
// as long as the computing they involve, not the time they name. Durations
// in the report are virtual; Report.Wall and StepResult.Wall give the time
// the run really took.
//
// Test marks t failed, with the report as a table in the test log, when a
// step failed or an expectation did not hold, and stops the test when the
// cluster cannot be created. It must not be called from inside a bubble.
//
// Code of one's own can run in virtual time too: create the Cluster inside
// synctest.Test and Close it before the bubble's function returns.
func Test(t *testing.T, s *Script, cfg Config) *Report {
	t.Helper()
	return testRun(t, s, cfg, runOptions{})
}

// testRun is Test with run's options.
func testRun(t *testing.T, s *Script, cfg Config, o runOptions) *Report {
	t.Helper()
	var (
		rep *Report
		err error
	)
	synctest.Test(t, func(*testing.T) {
		o.virtual = true
		rep, err = run(context.Background(), s, cfg, o)
	})
	if err != nil {
		t.Fatalf("scenario %s: %v", s.Name, err)
	}
	if !rep.OK() {
		var b strings.Builder
		rep.WriteTable(&b)
		t.Errorf("scenario %s failed in virtual time:\n%s", s.Name, b.String())
	}
	return rep
}
