package httpserve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, lim Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	stop := Serve(ln, h, lim, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stop)
	return ln.Addr().String()
}

// get opens a connection from localIP, asks for one page and leaves the
// connection open; ok reports whether the page came.
func get(t *testing.T, localIP, addr string) (c net.Conn, r *bufio.Reader, ok bool) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r = bufio.NewReader(c)
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return c, r, false
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return c, r, false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c, r, err == nil && resp.StatusCode == http.StatusOK
}

// TestConnectionBoundsAndRelease: sources beyond their share, and
// connections beyond the bound of all sources, are closed at once; a
// closed connection gives its place back.
func TestConnectionBoundsAndRelease(t *testing.T) {
	lim := Default
	lim.MaxConns, lim.MaxConnsPerSource = 5, 2
	addr := serve(t, lim)
	served := map[string]int{}
	var held []net.Conn
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		for range 3 {
			if c, _, ok := get(t, ip, addr); ok {
				served[ip]++
				held = append(held, c)
			}
		}
	}
	if served["127.0.0.2"] != 2 || served["127.0.0.3"] != 2 || served["127.0.0.4"] != 1 {
		t.Fatalf("served per source %v, want 2, 2 and the 1 left of 5", served)
	}
	held[0].Close()
	waitServed(t, "127.0.0.5", addr, "a closed connection gives its place back")
}

// waitServed waits until a connection from localIP is answered: the
// server sees a close asynchronously.
func waitServed(t *testing.T, localIP, addr, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, ok := get(t, localIP, addr); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleConnectionClosed: a kept-alive connection that asks for nothing
// more is closed after IdleTimeout, and its place given back.
func TestIdleConnectionClosed(t *testing.T) {
	lim := Default
	lim.MaxConns, lim.MaxConnsPerSource = 1, 1
	lim.IdleTimeout = 200 * time.Millisecond
	addr := serve(t, lim)
	c, r, ok := get(t, "127.0.0.2", addr)
	if !ok {
		t.Fatal("not answered")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle connection read %v, want the server's close (EOF)", err)
	}
	waitServed(t, "127.0.0.3", addr, "the idle connection gives its place back")
}

// TestHeaderBound: a request whose header carries 6 KiB of cookies is
// answered; one whose header is 12 KiB past MaxHeaderBytes (net/http
// reads up to 8 KiB beyond it) is refused 431 before any handler runs.
func TestHeaderBound(t *testing.T) {
	addr := serve(t, Default)
	status := func(cookie int) int {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Cookie", "c="+strings.Repeat("x", cookie))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(6 << 10); got != http.StatusOK {
		t.Errorf("a header with 6 KiB of cookies: status %d, want 200", got)
	}
	if got := status(Default.MaxHeaderBytes + 12<<10); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a header 12 KiB past MaxHeaderBytes: status %d, want 431", got)
	}
}

// TestNoWebPages: a scraper's request and the user's own navigation (a
// typed URL, a link followed from another site) are answered; requests
// a browser marks as made by a web page, of another site or of this one,
// are refused 403 before the handler runs.
func TestNoWebPages(t *testing.T) {
	for _, c := range []struct {
		what                   string
		site, mode, dest, user string
		want                   int
	}{
		{"a scraper (no Fetch Metadata)", "", "", "", "", http.StatusOK},
		{"a URL typed in the address bar", "none", "navigate", "document", "?1", http.StatusOK},
		{"a link followed from another site", "cross-site", "navigate", "document", "?1", http.StatusOK},
		{"a link followed from a page on another port of this host", "same-site", "navigate", "document", "?1", http.StatusOK},
		{"a window another site's script moves, no click", "cross-site", "navigate", "document", "", http.StatusForbidden},
		{"a no-cors fetch of another site's page", "cross-site", "no-cors", "empty", "", http.StatusForbidden},
		{"an image of another site's page", "cross-site", "no-cors", "image", "", http.StatusForbidden},
		{"a frame of another site's page", "cross-site", "navigate", "iframe", "?1", http.StatusForbidden},
		{"a fetch of a page on another port of this host", "same-site", "cors", "empty", "", http.StatusForbidden},
		{"a fetch of a page of this origin", "same-origin", "cors", "empty", "", http.StatusForbidden},
		{"a window a page of this origin opened", "same-origin", "navigate", "document", "", http.StatusForbidden},
	} {
		served := false
		h := NoWebPages(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true }))
		req := httptest.NewRequest("GET", "/metrics", nil)
		for k, v := range map[string]string{"Sec-Fetch-Site": c.site, "Sec-Fetch-Mode": c.mode, "Sec-Fetch-Dest": c.dest, "Sec-Fetch-User": c.user} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want || served != (c.want == http.StatusOK) {
			t.Errorf("%s: status %d, handler ran: %v; want %d", c.what, rec.Code, served, c.want)
		}
	}
}

func TestLiteralHostOnlyRefusesHostNamesThatCouldBeRebound(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	h := LiteralHostOnly("no such name here", []string{"Proxy.Example"}, ok)
	for host, want := range map[string]int{
		"proxy.example:9464":  http.StatusOK,
		"PROXY.example":       http.StatusOK,
		"proxy.example.evil":  http.StatusMisdirectedRequest,
		"127.0.0.1:8080":      http.StatusOK,
		"localhost:8080":      http.StatusOK,
		"[::1]:8080":          http.StatusOK,
		"127.0.0.1":           http.StatusOK,
		"rebind.example:8080": http.StatusMisdirectedRequest,
		"10.0.0.1:8080":       http.StatusOK,
		"[fe80::1]:8080":      http.StatusOK,
		"localhost.evil:8080": http.StatusMisdirectedRequest,
		"":                    http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: status %d, want %d", host, w.Code, want)
		}
	}
}
