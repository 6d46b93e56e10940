package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestOneLinePerKeyPerPeriodWithCount(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, 8)
	for range 5 {
		l.Warn("peer-a", "link refused", "peer", "a")
	}
	l.Warn("peer-b", "link refused", "peer", "b")
	if got := strings.Count(buf.String(), "link refused"); got != 2 {
		t.Fatalf("%d lines for 6 refusals of 2 peers, want 2:\n%s", got, buf.String())
	}
	// After the period the next line reports what was suppressed.
	l.keys["peer-a"].last = time.Now().Add(-2 * time.Hour)
	buf.Reset()
	if !l.Warn("peer-a", "link refused", "peer", "a") || !strings.Contains(buf.String(), "suppressed=4") {
		t.Fatalf("line after the period: %q, want suppressed=4", buf.String())
	}
}

func TestTotalBoundsLinesOfAllKeys(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, 64).Total(2, "too many keys")
	for _, k := range []string{"a", "b", "c", "d", "a", "c"} {
		l.Warn(k, "refused", "key", k)
	}
	if got, over := strings.Count(buf.String(), "msg=refused"), strings.Count(buf.String(), "too many keys"); got != 2 || over != 1 {
		t.Fatalf("%d lines and %d notes for 4 keys with a total of 2, want 2 and 1:\n%s", got, over, buf.String())
	}
	// The next period: c, held back twice, gets its line with both counts.
	l.start = time.Now().Add(-2 * time.Hour)
	buf.Reset()
	if !l.Warn("c", "refused", "key", "c") || !strings.Contains(buf.String(), "held_back=3") {
		t.Fatalf("line in the next period: %q, want held_back=3 (c, d and c again)", buf.String())
	}
}

func TestDebugBoundsLikeWarnAtItsLevel(t *testing.T) {
	var buf bytes.Buffer
	debug := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := New(debug, time.Hour, 64).Total(2, "too many keys")
	for _, k := range []string{"a", "a", "b", "c", "d"} {
		l.Debug(k, "bad open", "key", k)
	}
	out := buf.String()
	if got, over := strings.Count(out, "msg=\"bad open\""), strings.Count(out, "too many keys"); got != 2 || over != 1 {
		t.Fatalf("%d lines and %d notes for 5 lines of 4 keys with a total of 2, want 2 and 1:\n%s", got, over, out)
	}
	if n := strings.Count(out, "level=DEBUG"); n != 3 {
		t.Fatalf("%d of 3 lines at DEBUG:\n%s", n, out)
	}

	// A logger that does not write DEBUG: nothing logged, nothing counted.
	buf.Reset()
	quiet := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, 64).Total(1, "too many keys")
	for _, k := range []string{"a", "b", "a"} {
		if quiet.Debug(k, "bad open") {
			t.Fatalf("Debug logged %q to an INFO logger", k)
		}
	}
	if buf.Len() != 0 || len(quiet.keys) != 0 || quiet.held != 0 {
		t.Fatalf("an INFO logger: %q written, %d keys, %d held back; want nothing", buf.String(), len(quiet.keys), quiet.held)
	}
}
