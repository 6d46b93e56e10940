package simulate

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// firingWriter records progress lines, and on each line of a wait's own
// (virtual-time) progress fires the wall reporter, as its ticker would
// while the wait runs.
type firingWriter struct {
	buf  bytes.Buffer
	wall *wallReporter
}

func (f *firingWriter) Write(p []byte) (int, error) {
	n, err := f.buf.Write(p)
	if bytes.Contains(p, []byte(" so far ")) {
		f.wall.fire()
	}
	return n, err
}

// A wait converged that runs long says how far routing has got on the
// real clock too (RunVirtual fires the reporter every wallReportEvery),
// and no step reports once it ended.
func TestWaitConvergedReportsOnTheWallClock(t *testing.T) {
	s, err := Parse("line", `nodes a b c d e
link a-b latency=30ms
link b-c latency=30ms
link c-d latency=30ms
link d-e latency=30ms
wait converged timeout=10s
`)
	if err != nil {
		t.Fatal(err)
	}
	w := &firingWriter{wall: &wallReporter{}}
	testRun(t, s, Config{Backend: BackendMem}, runOptions{progress: w, wall: w.wall})
	var wallLines []string
	for line := range strings.Lines(w.buf.String()) {
		if strings.Contains(line, "wait converged") && !strings.Contains(line, " so far ") && strings.Contains(line, "...") {
			wallLines = append(wallLines, line)
		}
	}
	if len(wallLines) == 0 {
		t.Fatalf("no wall-clock progress line of the wait converged:\n%s", w.buf.String())
	}
	if !strings.Contains(wallLines[0], "pairs reachable ") || !strings.Contains(wallLines[0], " of 20") {
		t.Errorf("wall-clock progress line %q does not count the 20 pairs", wallLines[0])
	}
	if w.wall.report != nil {
		t.Error("a report is still set after the run")
	}
}

// A plain wait that runs long says on the real clock how much of its
// virtual time has passed: the reporter, fired from outside the bubble
// while the wait runs, prints how far it has come. The wait takes a few
// milliseconds of real time, so a loaded machine may run it whole before
// the reporter's ticker fires once: the run is tried up to five times
// for a line written while it ran.
func TestPlainWaitReportsOnTheWallClock(t *testing.T) {
	s, err := Parse("line", "nodes a b\nlink a-b latency=30ms\nwait 10m\n")
	if err != nil {
		t.Fatal(err)
	}
	var last, text string
	for try := 0; try < 5 && last == ""; try++ {
		last, text = plainWaitWallLine(t, s)
	}
	if last == "" {
		t.Fatalf("no wall-clock progress line of the wait in five runs; the last run's lines:\n%s", text)
	}
	if strings.Contains(last, "wait 10m: 0s of") {
		t.Errorf("the last progress line %q says no virtual time passed", last)
	}
}

// plainWaitWallLine runs s with a wall reporter fired every millisecond
// and returns the last wall-clock progress line of its wait (empty if
// none came) and every progress line.
func plainWaitWallLine(t *testing.T, s *Script) (last, text string) {
	t.Helper()
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	out := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	wall := &wallReporter{}
	stop := make(chan struct{})
	fired := make(chan struct{})
	go func() { // the reporter's ticker, much faster
		defer close(fired)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				wall.fire()
			}
		}
	}()
	testRun(t, s, Config{Backend: BackendMem}, runOptions{progress: out, wall: wall})
	close(stop)
	<-fired
	if wall.report != nil {
		t.Error("a report is still set after the run")
	}
	mu.Lock()
	text = buf.String()
	mu.Unlock()
	for line := range strings.Lines(text) {
		if strings.Contains(line, "wait 10m: ") && strings.Contains(line, " of 10m0s so far ") {
			last = line
		}
	}
	return last, text
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
