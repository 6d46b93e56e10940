package main

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// The /metrics output of live daemons, a dialling end and a relay, passes
// `promtool check metrics`, Prometheus' own linter. CI installs promtool
// (Debian's prometheus package); without it the test says so and skips
// (fails in CI: toolMissing).
func TestE2EPromtoolChecksLiveMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		toolMissing(t, "promtool is not installed (Debian package prometheus; .ci/run installs it): cannot run `promtool check metrics`")
	}
	l := newLab(t, "e2e")
	a := l.start("a", "", "--metrics", "127.0.0.1:0")
	b := l.start("b", "", "--link", a.addr, "--metrics", "127.0.0.1:0")
	ma, mb := a.metricsAddr(t), b.metricsAddr(t)
	l.start("c", "", "--link", b.addr)
	a.waitRoute(t, "c", anyRoute)
	a.cli("ping", "c", "-c", "1") // a dials, b relays
	if out, err := l.try("dial", "c", "nothing", "--data-dir", a.dir); err == nil {
		t.Fatalf("dial of a missing service succeeded: %s", out)
	}
	for name, addr := range map[string]string{"a": ma, "b": mb} {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("metrics of %s: %v", name, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"circuitmesh_relay_bytes_total", "circuitmesh_circuit_open_seconds_bucket", "circuitmesh_link_rtt_sampled_seconds_bucket"} {
			if !strings.Contains(string(body), want) {
				t.Fatalf("metrics of %s lack %s", name, want)
			}
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on %s's /metrics: %v\n%s", name, err, out)
		}
	}
}
