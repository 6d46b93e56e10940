package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2ETraceExportErrorsLoggedOnceAMinute: a collector that refuses
// every export (here it answers 400) makes the daemon log the failure,
// and how often is not its peers' choice. Each failed batch was one WARN
// line of its own: a member opening circuits to the node as fast as it
// can fills a batch of spans every 512 opens, besides the batch the
// processor sends every 5 s (4 lines in 20 s for 2,000 opens). Now one
// line a minute, the next carrying the count held back.
func TestE2ETraceExportErrorsLoggedOnceAMinute(t *testing.T) {
	var posts atomic.Int64
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		http.Error(w, "this collector takes nothing", http.StatusBadRequest)
	}))
	defer collector.Close()
	l := newLab(t, "e2e")
	a := l.startWith([]string{
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL,
		"OTEL_TRACES_SAMPLER=",
	}, "a", "")
	b := l.start("b", "", "--link", a.addr)
	b.waitRoute(t, "a", anyRoute)

	start := time.Now()
	if out, err := l.try("ping", "a", "-c", "1000", "-i", "1ms", "--data-dir", b.dir); err != nil {
		t.Logf("ping: %v\n%s", err, out)
	}
	// The batch processor's schedule (5 s) sends what is left, and at
	// least one batch more fails.
	for posts.Load() < 2 || time.Since(start) < 6*time.Second {
		if time.Since(start) > time.Minute {
			t.Fatalf("the collector got %d exports in a minute, want 2 or more: the test shows nothing", posts.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // the last failure reaches the log
	took := time.Since(start)
	lines := strings.Count(a.log.String(), `msg="trace export"`)
	t.Logf("%v: %d export requests refused, %d \"trace export\" WARN lines at a", took.Round(time.Second), posts.Load(), lines)
	if limit := 1 + int(took/time.Minute); lines < 1 || lines > limit {
		t.Fatalf("a wrote %d \"trace export\" WARN lines for %d failed exports in %v, want 1 to %d (one a minute)",
			lines, posts.Load(), took.Round(time.Second), limit)
	}
}
