package node

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// TestGossipWarningsRateLimited: one gossip packet can repeat a refused
// alive message a thousand times, and memberlist logs a WARN line for
// each; the node logs one line per kind of warning a minute, with the
// count of the lines it left out, and every kind still appears.
func TestGossipWarningsRateLimited(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewTextHandler(&buf, nil))
	ml := log.New(&slogWriter{l: sl, warns: ratelog.New(sl, time.Minute, 64)}, "", 0)
	for i := range 1000 {
		ml.Printf("[WARN] memberlist: ignoring alive message for 'm%d': member m%d: metadata signature does not verify", i, i)
		ml.Printf("[WARN] memberlist: handler queue full, dropping message (4) from=10.0.0.%d:7946", i%250)
		// Lines naming a node unquoted, with names a sender chooses.
		name := strings.Repeat("x", i%7+1) + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		ml.Printf("[WARN] memberlist: Got ping for unexpected node %s from=10.0.0.1:7946", name)
		ml.Printf("[WARN] memberlist: Rejected node %s (%s): not allowed", name, "10.0.0.1")
	}
	ml.Printf("[WARN] memberlist: Was able to connect to b over TCP but UDP probes failed, network may be misconfigured")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("4001 memberlist warnings of 5 kinds gave %d lines, want 5:\n%s", len(lines), strings.Join(lines[:min(len(lines), 8)], "\n"))
	}
	for i, want := range []string{"ignoring alive message for 'm0'", "handler queue full", "Got ping for unexpected node xaa", "Rejected node xaa", "UDP probes failed"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d is %q, want it to say %q", i, lines[i], want)
		}
	}
	ml.Printf("[WARN] memberlist: ignoring alive message for 'm1000': once more")
	if got := buf.String(); strings.Contains(got, "m1000") {
		t.Errorf("a warning of a kind logged within the minute was logged again")
	}
}
