package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestMetricsOnLoopbackRefuseReboundNames: a's metrics listen on
// 127.0.0.1, and a web page the operator's browser visits re-points a
// name of its own at that address (DNS rebinding). The browser then asks
// for http://rebound.example:PORT/metrics as the page's own origin,
// without Fetch Metadata (it sends none to a plain-HTTP origin of a DNS
// name), and hands the answer to the page. Before, /metrics answered it
// like a scraper's request: the page read the node's metrics, whose peer
// labels name its live links. Now a loopback /metrics answers only a
// Host that is an IP address or localhost (421 otherwise), which is how
// a scraper on the same host asks, or a name given with --metrics-host,
// which a reverse proxy in front that passes its clients' Host needs.
func TestMetricsOnLoopbackRefuseReboundNames(t *testing.T) {
	a := newLab(t, "metrics").start("a", "", "--metrics", "127.0.0.1:0", "--metrics-host", "proxy.example")
	addr := a.metricsAddr(t)
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	get := func(host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /metrics with Host %q: %v", host, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(body)
	}
	if code, body := get("rebound.example:" + port); code != http.StatusMisdirectedRequest || strings.Contains(body, "circuitmesh_") {
		t.Errorf("Host rebound.example:%s: status %d, body %.120q; want 421 and no metrics", port, code, body)
	}
	for _, host := range []string{addr, "localhost:" + port, "proxy.example:" + port} {
		if code, body := get(host); code != http.StatusOK || !strings.Contains(body, "circuitmesh_build_info") {
			t.Errorf("Host %s: status %d, body %.120q; want the metrics", host, code, body)
		}
	}
}

// --metrics-host without --metrics is a bad command line: the name it
// gives would be allowed nowhere.
func TestMetricsHostNeedsMetrics(t *testing.T) {
	l := newLab(t, "metrics")
	code, out := l.exitCode("run", "--data-dir", t.TempDir(), "--insecure", "--name", "x", "--listen", "127.0.0.1:0", "--metrics-host", "proxy.example")
	if code != 2 || !strings.Contains(out, "--metrics-host needs --metrics") {
		t.Fatalf("run --metrics-host without --metrics: exit status %d, want 2 and the reason:\n%s", code, out)
	}
}
