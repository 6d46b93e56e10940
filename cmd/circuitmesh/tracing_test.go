package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/go-logr/logr"
)

// The OpenTelemetry SDK's warnings reach the daemon's log as WARN at its
// default level (INFO), its information as INFO, its errors as ERROR, and
// its debugging stays out.
func TestOpenTelemetryLogLevels(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})
	l := logr.FromSlogHandler(otelLevels{h})
	l.V(1).Info("a warning") // the SDK's Warn
	l.V(4).Info("information")
	l.V(8).Info("debugging")
	l.Error(errors.New("boom"), "an error")

	var got []string
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		got = append(got, rec.Level+" "+rec.Msg)
	}
	want := []string{"WARN a warning", "INFO information", "ERROR an error"}
	if len(got) != len(want) {
		t.Fatalf("logged %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logged %q, want %q", got, want)
		}
	}
}
