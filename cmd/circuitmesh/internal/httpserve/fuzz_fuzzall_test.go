package httpserve

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// FuzzLiteralHostOnly sends any Host header, as a browser or a scraper
// chooses it, to the DNS rebinding check: a request reaches the handler
// only when its host (the port cut) is an IP literal, localhost or a name
// given (compared without case), and any other is refused with 421 and
// the refusal text, the handler not run.
func FuzzLiteralHostOnly(f *testing.F) {
	for _, s := range []string{"proxy.example:9464", "PROXY.example", "proxy.example.evil", "127.0.0.1:8080", "localhost:8080",
		"[::1]:8080", "127.0.0.1", "rebind.example:8080", "[fe80::1%25eth0]:8080", "localhost.evil:8080", "", "[::ffff:1.2.3.4]", "1.2.3.4:"} {
		f.Add(s)
	}
	also := []string{"Proxy.Example"}
	f.Fuzz(func(t *testing.T, host string) {
		served := false
		h := LiteralHostOnly("refused", also, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		name := host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			name = hh
		}
		_, err := netip.ParseAddr(strings.Trim(name, "[]"))
		named := name == "localhost" || slices.ContainsFunc(also, func(a string) bool { return strings.EqualFold(a, name) })
		switch {
		case served && err != nil && !named:
			t.Fatalf("Host %q served: %q is no IP literal, localhost or name given", host, name)
		case !served && (err == nil || named):
			t.Fatalf("Host %q refused (%d)", host, w.Code)
		case !served && (w.Code != http.StatusMisdirectedRequest || !strings.Contains(w.Body.String(), "refused")):
			t.Fatalf("Host %q: status %d, body %q", host, w.Code, w.Body.String())
		}
	})
}
