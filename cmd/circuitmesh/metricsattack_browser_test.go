package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// metricsLab finds Chromium (bin) and starts a lab whose daemon serves
// /metrics on metricsAddr.
func metricsLab(t *testing.T) (bin, metricsAddr string) {
	t.Helper()
	if bin = chromium(); bin == "" {
		toolMissing(t, "no Chromium: install Debian's chromium package (or set CIRCUITMESH_CHROMIUM) to run web pages against /metrics in a headless browser")
	}
	a := newLab(t, "metrics").start("a", "", "--metrics", "127.0.0.1:0")
	return bin, a.metricsAddr(t)
}

// browser starts a headless Chromium (bin) and returns its first tab and
// what ends it (at the latest when the test ends).
func browser(t *testing.T, bin string) (context.Context, func()) {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox)...)
	page, cancel := chromedp.NewContext(alloc)
	end := func() { cancel(); cancelAlloc() }
	t.Cleanup(end)
	return page, end
}

// evaluate is the value of the expression js in page.
func evaluate[T any](page context.Context, js string) T {
	ctx, cancel := context.WithTimeout(page, 10*time.Second)
	defer cancel()
	v, _ := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	return v
}

// crossSitePage serves a page of another site to the browser (at
// http://localhost:PORT, while the daemon's endpoints are on 127.0.0.1)
// whose script asks the URL the JavaScript expression url gives with
// no-cors fetches from four loops, as fast as the browser lets it,
// counting them in window.sent, and returns the page's URL. It cannot
// read the answers, but the daemon serves them. Four loops ask hundreds
// of times a second, far beyond the rates at stake, and hold only half
// of the 8 connections the browser's address may keep open: a page's
// connections count against them (docs/SECURITY.md), and with six, on a
// loaded machine, the operator's own page sometimes had none to ask on
// for 20 s, which is not what these tests look at.
func crossSitePage(t *testing.T, url string) string {
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><script>
window.sent = 0;
for (let i = 0; i < 4; i++) (async () => {
  for (;;) {
    try { await fetch(%s, {mode: "no-cors", cache: "no-store"}); } catch (e) {}
    window.sent++;
  }
})();
</script>`, url)
	}))
	t.Cleanup(hostile.Close)
	return strings.Replace(hostile.URL, "127.0.0.1", "localhost", 1)
}

// TestBrowserAttackCrossSitePageSpendsScrapes: a's metrics listen on
// 127.0.0.1, where a scraper on the same host (a Prometheus agent) asks
// for them, and the operator's browser on that host has a page of
// another web site open (here one served from http://localhost:PORT,
// another site to the browser), whose script asks for /metrics with
// no-cors fetches from four loops: it cannot read the answers, but the
// daemon served them. They spent the scrapes of 127.0.0.1 (2 a second,
// burst 4), which the scraper shares: 9 to 10 of its 10 scrapes, one
// every half second, were refused 429 while the page stayed open (or not
// answered, the page's connections holding the places of 127.0.0.1). Now
// a request a browser marks as made by a page is refused 403 before it
// spends any scrape, and every scrape is answered. The operator opening
// the URL in the browser still reads the metrics.
func TestBrowserAttackCrossSitePageSpendsScrapes(t *testing.T) {
	bin, metrics := metricsLab(t)
	hostile := crossSitePage(t, fmt.Sprintf(`"http://%s/metrics"`, metrics))
	// The operator opens the metrics in a browser.
	operator, closeOperator := browser(t, bin)
	if _, err := chromedp.Run(operator, chromedp.Navigate("http://"+metrics+"/metrics")); err != nil {
		t.Fatalf("open /metrics in the browser: %v", err)
	}
	if body := evaluate[string](operator, `document.body.innerText`); !strings.Contains(body, "circuitmesh_build_info") {
		t.Fatalf("/metrics opened in the browser's address bar shows %.200q, want the metrics", body)
	}
	closeOperator()

	page, _ := browser(t, bin)
	if _, err := chromedp.Run(page, chromedp.Navigate(hostile)); err != nil {
		t.Fatalf("load the other site's page: %v", err)
	}
	waitUntil(t, "the other site's page to send 100 requests", func() bool { return evaluate[int](page, `window.sent`) >= 100 })

	// The scraper asks ten times, one every half second, while the
	// page keeps asking.
	var codes []int
	refused := 0
	for range 10 {
		code := 0 // no answer: the connection was closed at the bound of connections
		if resp, err := http.Get("http://" + metrics + "/metrics"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
		}
		codes = append(codes, code)
		if code != http.StatusOK {
			refused++
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the other site's page sent %d requests; the scraper's 10 scrapes were answered %v", evaluate[int](page, `window.sent`), codes)
	if refused > 0 {
		t.Errorf("the scraper was refused %d of 10 scrapes (%v) while another site's page asked for /metrics: a web page spends the scrapes of its browser's host",
			refused, codes)
	}
}
