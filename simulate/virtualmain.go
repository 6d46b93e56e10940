package simulate

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// ErrVirtual: a run in virtual time outside go test did not produce a
// report (the bubble failed, for instance because goroutines were left
// blocked when the run ended); the error carries the testing package's
// output.
var ErrVirtual = errors.New("virtual-time run failed")

// virtualMu makes RunVirtual calls one at a time: each swaps os.Stdout.
var virtualMu sync.Mutex

// RunVirtual runs the scenario in virtual time outside go test, as
// `circuitmesh simulate --virtual` does: the cluster lives in a
// testing/synctest bubble, whose fake clock jumps forward whenever every
// goroutine of the cluster is blocked, so durations in the report are
// virtual and Report.Wall is the real time.
//
// synctest needs a *testing.T, and Go (1.26) has no other entry to a
// bubble; RunVirtual gets one by running a single test through the
// testing package's own runner (testing.MainStart, with a minimal set of
// the hooks go test generates), with the runner's output (its PASS line,
// the test's log) captured rather than printed. The run cannot be
// cancelled from outside the bubble: a channel of the bubble may not be
// closed from outside it.
//
// It must not be called from a Go test (use Test there): the testing
// package's state would be shared with the test running it.
func RunVirtual(s *Script, cfg Config, progress io.Writer) (*Report, error) {
	virtualMu.Lock()
	defer virtualMu.Unlock()
	var (
		rep    *Report
		runErr error
	)
	test := func(t *testing.T) {
		// synctest.Test panics when goroutines are left blocked in the
		// bubble at its end; the runner would re-raise it and kill the
		// process. Report it as ErrVirtual, with the report kept.
		defer func() {
			if r := recover(); r != nil {
				runErr = fmt.Errorf("run %s: %w: %v", s.Name, ErrVirtual, r)
				t.Fail()
			}
		}()
		o := runOptions{progress: progress, virtual: true}
		if progress != nil {
			// Started outside the bubble, so that it runs on the real clock.
			o.progress, o.wall = &lockedWriter{w: progress}, &wallReporter{}
			done := make(chan struct{})
			defer close(done)
			go o.wall.run(wallReportEvery, done)
		}
		synctest.Test(t, func(*testing.T) {
			rep, runErr = run(context.Background(), s, cfg, o)
		})
	}
	// The runner parses the process's command line unless flags were
	// parsed already: they were not ours to give it.
	testing.Init()
	if !flag.Parsed() {
		flag.CommandLine.Parse(nil)
	}
	out, err := captureStdout(func() {
		testing.MainStart(virtualDeps{}, []testing.InternalTest{{Name: "simulate", F: test}}, nil, nil, nil).Run()
	})
	if err != nil {
		return nil, fmt.Errorf("run %s in virtual time: %w", s.Name, err)
	}
	if rep == nil {
		if runErr != nil {
			return nil, runErr
		}
		return nil, fmt.Errorf("run %s: %w:\n%s", s.Name, ErrVirtual, out)
	}
	if runErr == nil && !bytes.HasSuffix(bytes.TrimSpace(out), []byte("PASS")) {
		// The scenario ran but the bubble did not end cleanly.
		runErr = fmt.Errorf("run %s: %w:\n%s", s.Name, ErrVirtual, out)
	}
	return rep, runErr
}

// maxCaptured bounds the runner's output kept by captureStdout.
const maxCaptured = 64 << 10

// captureStdout runs f with os.Stdout going to a pipe and returns what
// was written there (the first maxCaptured bytes).
func captureStdout(f func()) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("capture the test runner's output: %w", err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(&buf, io.LimitReader(r, maxCaptured))
		io.Copy(io.Discard, r)
		r.Close()
	}()
	stdout := os.Stdout
	os.Stdout = w
	func() {
		defer func() {
			os.Stdout = stdout
			w.Close()
		}()
		f()
	}()
	<-done
	return buf.Bytes(), nil
}

// virtualDeps is the minimal set of hooks testing.MainStart needs to run
// one test: no profiles, no coverage, no fuzzing, every name matches.
type virtualDeps struct{}

// corpusEntry is the testing package's fuzzing corpus entry (an alias of
// an unnamed struct type there, so this one is the same type).
type corpusEntry = struct {
	Parent     string
	Path       string
	Data       []byte
	Values     []any
	Generation int
	IsSeed     bool
}

var errNoFuzzing = errors.New("fuzzing is not supported in a virtual-time run")

func (virtualDeps) ImportPath() string                          { return "" }
func (virtualDeps) ModulePath() string                          { return "" }
func (virtualDeps) MatchString(pat, str string) (bool, error)   { return true, nil }
func (virtualDeps) SetPanicOnExit0(bool)                        {}
func (virtualDeps) StartCPUProfile(io.Writer) error             { return nil }
func (virtualDeps) StopCPUProfile()                             {}
func (virtualDeps) StartTestLog(io.Writer)                      {}
func (virtualDeps) StopTestLog() error                          { return nil }
func (virtualDeps) WriteProfileTo(string, io.Writer, int) error { return nil }
func (virtualDeps) CoordinateFuzzing(time.Duration, int64, time.Duration, int64, int, []corpusEntry, []reflect.Type, string, string) error {
	return errNoFuzzing
}
func (virtualDeps) RunFuzzWorker(func(corpusEntry) error) error { return errNoFuzzing }
func (virtualDeps) ReadCorpus(string, []reflect.Type) ([]corpusEntry, error) {
	return nil, errNoFuzzing
}
func (virtualDeps) CheckCorpus([]any, []reflect.Type) error { return nil }
func (virtualDeps) ResetCoverage()                          {}
func (virtualDeps) SnapshotCoverage()                       {}
func (virtualDeps) InitRuntimeCoverage() (string, func(string, string) (string, error), func() float64) {
	return "", nil, nil
}
