package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sync/atomic"
	"testing"
	"time"
)

// metricsClient asks for /metrics over a connection of its own from
// localIP and keeps the connection open (kept alive) until the test ends.
// It returns the answer's status, 0 when none came.
func metricsClient(t *testing.T, localIP, addr string) int {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsConnectionsPerSourceBounded: whoever reaches the --metrics
// port could hold as many connections as it opened, each a goroutine,
// buffers and a file descriptor of the daemon, for good once it had asked
// for one page (kept-alive connections had no idle timeout). Now one
// source holds at most its share and the rest are closed at once, while
// another source is still answered.
func TestMetricsConnectionsPerSourceBounded(t *testing.T) {
	addr := serveTestMetrics(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "circuitmesh_up 1") }))

	const attempts = 32
	served := 0
	for range attempts {
		if metricsClient(t, "127.0.0.2", addr) != 0 {
			served++
		}
	}
	t.Logf("one source kept %d of %d connections answered and open", served, attempts)
	if served > 8 {
		t.Fatalf("one source holds %d connections to /metrics open at once", served)
	}
	if st := metricsClient(t, "127.0.0.3", addr); st != http.StatusOK {
		t.Fatalf("another source got %d while the first held its share", st)
	}
}

// TestMetricsScrapeRateBounded: a scrape costs the daemon a gathering of
// every metric for a request of a few bytes, so a client asking for
// /metrics as fast as it could made the daemon gather as fast: a core
// for one connection. Now one source is answered at its rate, the rest
// refused with 429, and another source is still answered.
func TestMetricsScrapeRateBounded(t *testing.T) {
	var gathers atomic.Int64
	addr := serveTestMetrics(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gathers.Add(1)
		fmt.Fprintln(w, "circuitmesh_up 1")
	}))

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
	defer cl.CloseIdleConnections()
	const asks = 100
	tooMany := 0
	for range asks {
		resp, err := cl.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			tooMany++
		}
	}
	t.Logf("one source asking %d times in a row: %d gatherings, %d refused with 429", asks, gathers.Load(), tooMany)
	if n := gathers.Load(); n > asks/4 {
		t.Fatalf("one source asking %d times in a row made the daemon gather the metrics %d times", asks, n)
	}
	if st := metricsClient(t, "127.0.0.3", addr); st != http.StatusOK {
		t.Fatalf("another source got %d", st)
	}
}

// metricsAddr is the address serveMetrics logged.
func metricsAddr(t *testing.T, logs *syncBuffer) string {
	t.Helper()
	m := regexp.MustCompile(`address=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no address in the log: %s", logs.String())
	}
	return m[1]
}

// serveTestMetrics serves h as the daemon serves /metrics, on a port of
// the kernel's choosing, until the test ends, and returns its address.
func serveTestMetrics(t *testing.T, h http.Handler) string {
	t.Helper()
	var logs syncBuffer
	stop, err := serveMetrics("127.0.0.1:0", nil, h, newLogger(&logs, slog.LevelInfo, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return metricsAddr(t, &logs)
}
