package simulate

import (
	"bytes"
	"strings"
	"testing"
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
