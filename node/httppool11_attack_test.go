package node

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// Services m publishes and redirects through, and the limit r puts on the
// circuits of one source in the idle-pool test.
const (
	poolHopServices = 300
	poolRelayLimit  = 256
)

// TestAttackHTTPRedirectsFillTheIdlePool: every peer/service pair has its
// own pool of keep-alive circuits in HTTPTransport, and a redirect to
// another service of the same peer is followed. m, a member with a valid
// certificate, publishes poolHopServices services and answers each GET of
// http://m/web/N with a chain of 9 redirects, each to a service of m the
// client has not seen yet. a's application polls m's web 30 times, one
// request after the other. Before, each hop's circuit stayed open in its
// own pool for the pool's idle time (90 s), with no bound on all pools
// together: a held 256 idle circuits through its relay r, which allows
// poolRelayLimit circuits per source, and a's dial to c through r was
// refused overloaded. Now all pools together keep at most
// MaxHTTPIdleCircuits idle circuits, the oldest closed first: a's dial to
// c goes through, and the client's requests to m still succeed.
func TestAttackHTTPRedirectsFillTheIdlePool(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "r" {
			cfg.Limits.MaxCircuitsPerSource = poolRelayLimit
		}
	}
	c.build("a-r", "r-m", "r-c")
	c.waitRoute("a", "m", 2)
	c.waitRoute("a", "c", 2)
	a, m := c.node("a"), c.node("m")

	// /web/N starts chain N, which goes through 9 services of m:
	// /sK/N/L redirects to the next one while L, the hops left, is not 0.
	hop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chain, left := 0, 9
		if n, _ := fmt.Sscanf(r.URL.Path, "/%d/%d", &chain, &left); n == 2 && left == 0 {
			io.WriteString(w, "done")
			return
		}
		next := (chain*9 + 9 - left) % poolHopServices
		http.Redirect(w, r, fmt.Sprintf("http://m/s%03d/%d/%d", next, chain, left-1), http.StatusFound)
	})
	serveHTTP(t, m, "web", hop)
	for i := range poolHopServices {
		serveHTTP(t, m, fmt.Sprintf("s%03d", i), hop)
	}

	held := func() float64 { return metricValue(t, a, "circuitmesh_circuits_active", "role", "dial") }
	cl := a.HTTPClient()
	var getErr error
	for i := range 30 {
		resp, err := cl.Get(fmt.Sprintf("http://m/web/%d", i))
		if err == nil {
			var body []byte
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && string(body) != "done" {
				err = fmt.Errorf("answered %q", body)
			}
		}
		if err != nil && getErr == nil {
			getErr = fmt.Errorf("GET %d: %w", i, err)
		}
	}

	conn, err := a.Dial(ctxT(t, 20*time.Second), "c", EchoService)
	if err != nil {
		t.Fatalf("a's dial to c through r after polling m: %v; a holds %v circuits", err, held())
	}
	conn.Close()
	if getErr != nil {
		t.Fatalf("a's polls of m/web: %v", getErr)
	}
	waitFor(t, fmt.Sprintf("a to hold at most %d idle circuits", MaxHTTPIdleCircuits), 30*time.Second, func() bool {
		return held() <= MaxHTTPIdleCircuits
	})
}
