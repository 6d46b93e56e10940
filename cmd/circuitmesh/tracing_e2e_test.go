package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// OTEL_TRACES_SAMPLER decides at the source, and the relays and the
// destination follow the decision they receive in the open header: a
// source that samples nothing of its own (parentbased_traceidratio with
// ratio 0) makes a circuit no hop records, while the same hops record
// every hop of a circuit from a source that samples, a included.
func TestE2ESamplerVariablesDecideAtTheSourceForEveryHop(t *testing.T) {
	rcv := startOTLPReceiver(t)
	l := newLab(t, "e2e")
	env := func(extra ...string) []string {
		return append([]string{
			"OTEL_TRACES_EXPORTER=otlp",
			"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + rcv.grpcAddr,
			"OTEL_BSP_SCHEDULE_DELAY=100",
			"OTEL_SERVICE_NAME=",
			"OTEL_TRACES_SAMPLER=",
			"OTEL_TRACES_SAMPLER_ARG=",
		}, extra...)
	}
	a := l.startWith(env("OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0"), "a", "")
	b := l.startWith(env(), "b", "", "--link", a.addr)
	c := l.startWith(env(), "c", "", "--link", b.addr)
	d := l.startWith(env(), "d", "", "--link", c.addr)
	a.waitRoute(t, "d", func(p node.PeerInfo) bool { return p.Hops == 3 })
	d.waitRoute(t, "a", func(p node.PeerInfo) bool { return p.Hops == 3 })

	a.cli("ping", "d", "-c", "1") // a samples nothing: no hop may record it
	d.cli("ping", "a", "-c", "1") // d samples: every hop records, a too

	// Each daemon exports its spans in the order they ended, so once every
	// hop's span of the second circuit arrived, any span a hop recorded of
	// the first one has arrived too.
	spans := rcv.waitTrace(t, 4)
	got := []string{}
	for _, s := range spans {
		got = append(got, s.GetName()+"@"+s.resource["service.instance.id"])
	}
	if want := "circuitmesh.dial@d circuitmesh.forward@c circuitmesh.forward@b circuitmesh.accept@a"; strings.Join(got, " ") != want {
		t.Fatalf("the sampled circuit's trace is %v, want %s:\n%s", got, want, rcv.dump())
	}
	for i, s := range spans[1:] {
		if string(s.GetParentSpanId()) != string(spans[i].GetSpanId()) {
			t.Fatalf("hop %d is not a child of hop %d:\n%s", i+1, i, rcv.dump())
		}
	}
	rcv.mu.Lock()
	n := len(rcv.spans)
	rcv.mu.Unlock()
	if n != 4 {
		t.Fatalf("the receiver holds %d spans, want only the sampled circuit's 4:\n%s", n, rcv.dump())
	}
}

// An exporter that fails (here the collector answers 400) is reported
// through the daemon's logger, in its --log-format, not through the
// standard logger: every line the daemon writes stays JSON.
func TestE2ETraceExportErrorsGoToTheStructuredLog(t *testing.T) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "this collector takes nothing", http.StatusBadRequest)
	}))
	defer collector.Close()
	l := newLab(t, "e2e")
	b := l.start("b", "")
	a := l.startWith([]string{
		"OTEL_TRACES_EXPORTER=otlp",
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL,
		"OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_TRACES_SAMPLER=",
	}, "a", "", "--link", b.addr, "--log-format", "json")
	a.waitRoute(t, "b", anyRoute)
	a.cli("ping", "b", "-c", "1")

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.log.String(), `"msg":"trace export"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no trace export error in a's log:\n%s", a.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(a.log.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line of the daemon's output is not JSON (%v): %q", err, line)
		}
		if rec["msg"] == "trace export" {
			found = true
			if rec["level"] != "WARN" || !strings.Contains(rec["err"].(string), "400") {
				t.Fatalf("trace export error logged as %v", rec)
			}
		}
	}
	if !found {
		t.Fatal("the trace export error is not a log record of its own")
	}
}
