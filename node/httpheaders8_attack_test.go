package node

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttackHTTPResponseHeadersUnbounded: m, a member with a valid
// certificate serving "web", answers a's HTTPClient requests with
// headers of its choosing. Before, the transport kept net/http's default
// bound (10 MB): a's GET of /big read all 2.6 MiB of m's headers into
// memory, and every request in flight could hold that much. Now a
// response's headers are held to MaxHTTPResponseHeaderBytes (1 MiB): the
// GET fails with net/http's "exceeded" error, the circuit it came on is
// closed (m's server sees its connection end), and the client still
// serves requests, headers of 896 KiB among them.
func TestAttackHTTPResponseHeadersUnbounded(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-m")
	c.waitRoute("a", "m", 1)
	a, m := c.node("a"), c.node("m")

	pad := strings.Repeat("x", 64<<10)
	ln, err := m.Listen("web")
	if err != nil {
		t.Fatal(err)
	}
	var opened, closed atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				opened.Add(1)
			case http.StateClosed, http.StateHijacked:
				closed.Add(1)
			}
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})

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
	waitFor(t, "m's server to see the circuit of the refused response closed", 30*time.Second, func() bool {
		return opened.Load() >= 1 && closed.Load() == opened.Load()
	})

	// The bound is not tight: 896 KiB of headers are read, and the client
	// works on.
	resp, body, err := get("/fits")
	if err != nil || body != "ok" || headerBytes(resp.Header) < 14*len(pad) {
		t.Fatalf("a's GET of m/web/fits after the refusal: %v %q, want ok with 896 KiB of headers", err, body)
	}
}
