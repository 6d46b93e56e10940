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
