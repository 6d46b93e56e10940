package node

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAttackHTTPResponseHeadersUnbounded: m, a member with a valid
// certificate serving "web", answers a's HTTPClient requests with
// headers of its choosing. Before, the transport kept net/http's default
// bound (10 MB): a's GET of /big read all 2.6 MiB of m's headers into
// memory. Now a
// response's headers are held to MaxHTTPResponseHeaderBytes (1 MiB): the
// GET fails with net/http's "exceeded" error, the circuit it came on is
// closed at both ends (no circuit stays active on a or m), and the
// client still serves requests, headers of 896 KiB among them.
func TestAttackHTTPResponseHeadersUnbounded(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-m")
	c.waitRoute("a", "m", 1)
	a, m := c.node("a"), c.node("m")

	pad := strings.Repeat("x", 64<<10)
	serveHTTP(t, m, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		switch r.URL.Path {
		case "/big":
			n = 40 // 2.6 MiB
		case "/fits":
			n = 14 // 896 KiB
		}
		for i := range n {
			w.Header().Set(fmt.Sprintf("X-Pad-%d", i), pad)
		}
		io.WriteString(w, "ok")
	}))
	active := func(n *Node, role string) float64 {
		return metricValue(t, n, "circuitmesh_circuits_active", "role", role)
	}

	cl := a.HTTPClient()
	get := func(path string) (*http.Response, string, error) {
		ctx := ctxT(t, 30*time.Second)
		req, err := http.NewRequestWithContext(ctx, "GET", "http://m/web"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, string(body), err
	}
	headerBytes := func(h http.Header) (n int) {
		for k, vs := range h {
			for _, v := range vs {
				n += len(k) + len(v)
			}
		}
		return n
	}

	resp, _, err := get("/big")
	if err == nil {
		t.Fatalf("a's GET of m/web/big read %d bytes of m's headers (status %d), want it refused beyond %d",
			headerBytes(resp.Header), resp.StatusCode, MaxHTTPResponseHeaderBytes)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("exceeded %d bytes", MaxHTTPResponseHeaderBytes)) {
		t.Fatalf("a's GET of m/web/big: %v, want net/http's error for headers beyond %d bytes", err, MaxHTTPResponseHeaderBytes)
	}
	t.Logf("a's GET of m/web/big: %v", err)
	waitFor(t, "the circuit of the refused response to close at both ends", 30*time.Second, func() bool {
		return active(a, "dial") == 0 && active(m, "accept") == 0
	})

	// The bound is not tight: 896 KiB of headers are read, and the client
	// works on.
	resp, body, err := get("/fits")
	if err != nil || body != "ok" || headerBytes(resp.Header) < 14*len(pad) {
		t.Fatalf("a's GET of m/web/fits after the refusal: %v %q, want ok with 896 KiB of headers", err, body)
	}
	// The gauge counts the client's circuits: the one the answer came on
	// waits in the keep-alive pool.
	if n := active(a, "dial"); n != 1 {
		t.Fatalf("a has %v active circuits after the last answer, want its pooled one", n)
	}
}
