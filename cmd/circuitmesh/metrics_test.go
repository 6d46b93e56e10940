package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// metricsClient asks for /metrics over a connection of its own from
// localIP and keeps the connection open (kept alive) until the test ends.
// It reports whether the page came.
func metricsClient(t *testing.T, localIP, addr string) bool {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}

// TestMetricsConnectionsPerSourceBounded: whoever reaches the --metrics
// port could hold as many connections as it opened, each a goroutine,
// buffers and a file descriptor of the daemon, for good once it had asked
// for one page (kept-alive connections had no idle timeout). Now one
// source holds at most its share and the rest are closed at once, while
// another source is still answered.
func TestMetricsConnectionsPerSourceBounded(t *testing.T) {
	var logs syncBuffer
	log := newLogger(&logs, slog.LevelInfo, false)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "circuitmesh_up 1") })
	stop, err := serveMetrics("127.0.0.1:0", h, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`address=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no address in the log: %s", logs.String())
	}
	addr := m[1]

	const attempts = 32
	served := 0
	for range attempts {
		if metricsClient(t, "127.0.0.2", addr) {
			served++
		}
	}
	t.Logf("one source kept %d of %d connections answered and open", served, attempts)
	if served > 8 {
		t.Fatalf("one source holds %d connections to /metrics open at once", served)
	}
	if !metricsClient(t, "127.0.0.3", addr) {
		t.Fatal("another source was not answered while the first held its share")
	}
}
