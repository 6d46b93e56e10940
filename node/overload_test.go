package node

import (
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestOverloadRefusalsLoggedOnce: a source that keeps opening circuits
// beyond its per-source limit at b is refused every time, b logs that as
// one WARN line with the count, not a line per circuit, and its metrics
// count every refusal.
func TestOverloadRefusalsLoggedOnce(t *testing.T) {
	var logs syncBuf
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.Limits.MaxCircuitsPerSource = 2
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
	}
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	serve(t, c.nodes["b"], "hold", func(conn io.ReadWriteCloser) { io.Copy(io.Discard, conn) })
	for range 2 {
		conn, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", "hold")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	// A first contact takes a full handshake, whose circuit counts
	// against its source once the source's last message authenticates
	// it: on a loaded machine after the next opens.
	b := c.nodes["b"]
	waitFor(t, "b to count both circuits against a", 10*time.Second, func() bool {
		b.limits.mu.Lock()
		defer b.limits.mu.Unlock()
		return b.limits.perSrc[links.ProvenSource("a")] == 2
	})
	const refused = 20
	for i := range refused {
		if _, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", "hold"); !errors.Is(err, circuit.ErrOverloaded) {
			t.Fatalf("circuit %d beyond the limit: %v, want overloaded", i, err)
		}
	}
	const msg = "refusing circuits: a circuit limit is reached"
	if n := strings.Count(logs.String(), msg); n != 1 {
		t.Fatalf("%d WARN lines %q for %d refusals, want 1:\n%s", n, msg, refused, logs.String())
	}
	rec := httptest.NewRecorder()
	c.nodes["b"].MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if m := grepLines(rec.Body.String(), `circuitmesh_circuits_refused_total{code="overloaded"} 20`); m == "" {
		t.Fatalf("metrics do not count the %d refusals:\n%s", refused, grepLines(rec.Body.String(), "circuits_refused_total"))
	}
}
