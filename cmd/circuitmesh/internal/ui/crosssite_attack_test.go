package ui

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// TestAttackCrossSiteRequestsSpendThePage: a web page of another site,
// open in the operator's browser, asks the mesh page's /api/view as an
// image, a form or a no-cors fetch asks it: without the header the page's
// script sets (a cross-site fetch cannot set it without a CORS preflight
// the daemon never grants). Before, each was answered like the page's own
// polls, asking for a ping to the destination named, and 30 of them spent
// the views of the browser's address, so that the page's next request was
// refused 429. Now they are refused 403 before they spend anything, the
// page's own request is answered, and no other site may frame the page.
func TestAttackCrossSiteRequestsSpendThePage(t *testing.T) {
	a := realNode(t, "a")
	addr, stop, err := Serve("127.0.0.1:0", a, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	get := func(path string, fromPage bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr.String()+path, nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if fromPage {
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			req.Header.Set("X-Circuitmesh-Page", "1") // as the page's script asks
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	answered := 0
	for i := range 30 {
		if resp := get("/api/view?to=n"+strings.Repeat("x", i), false); resp.StatusCode == http.StatusOK {
			answered++
		} else if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a cross-site request: status %d", resp.StatusCode)
		}
	}
	resp := get("/api/view", true)
	t.Logf("30 cross-site views: %d answered; the page's own view then: %d", answered, resp.StatusCode)
	if answered > 0 || resp.StatusCode != http.StatusOK {
		t.Errorf("30 requests without the page's header: %d answered, and the page's own view after them %d, want none answered and 200",
			answered, resp.StatusCode)
	}
	page := get("/", false)
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("GET / from a link of another site: %d, Content-Security-Policy %q: want the page, which no other site may frame",
			page.StatusCode, page.Header.Get("Content-Security-Policy"))
	}
}
