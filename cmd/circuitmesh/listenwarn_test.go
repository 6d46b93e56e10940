package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestListenersBeyondLoopbackWarn: a daemon whose --forward or --metrics
// listens on every interface (":PORT") says so at WARN, as --ui does:
// anyone who reaches the host then opens circuits as this node, or reads
// its metrics. Listeners on loopback do not warn. Before, both were an
// INFO line like any other.
func TestListenersBeyondLoopbackWarn(t *testing.T) {
	dir := t.TempDir()
	d, err := parseRun(t, "--insecure", "--name", "a", "--data-dir", dir, "--listen", "127.0.0.1:0",
		"--admin", filepath.Join(dir, "admin.sock"),
		"--forward", ":0=b/ssh", "--forward", "0=b/web", "--metrics", ":0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, d, &logs) }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "node running"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("the daemon did not start:\n%s", logs.String())
		}
	}
	// `circuitmesh forward` warns on its own output too.
	code, out, stderr := cm(t, "forward", "0.0.0.0:0", "b/db", "--admin", d.admin)
	if code != 0 || !strings.Contains(stderr, "is not on loopback") || !strings.Contains(stderr, "b/db as this node") {
		t.Fatalf("forward 0.0.0.0:0 b/db: exit %d, %q %q; want a warning that it is not on loopback", code, out, stderr)
	}
	if code, _, stderr := cm(t, "forward", "localhost:0", "b/db", "--admin", d.admin); code != 0 || stderr != "" {
		t.Fatalf("forward localhost:0 b/db (loopback): exit %d, %q", code, stderr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	var warns []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "loopback") {
			warns = append(warns, l)
		}
	}
	if len(warns) != 3 ||
		!strings.Contains(warns[0], "b/ssh as this node") || !strings.Contains(warns[0], "listen=[::]:") ||
		!strings.Contains(warns[1], "metrics") || !strings.Contains(warns[1], "address=[::]:") {
		t.Fatalf("warnings about listeners beyond loopback: %q; want one for each forward on every interface and one for the metrics, none for 127.0.0.1\n%s",
			warns, logs.String())
	}
}
