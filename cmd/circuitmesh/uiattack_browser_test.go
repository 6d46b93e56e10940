package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hostileName is a service name (circuit.ValidateService allows any
// punctuation and symbols) written to break out of an attribute and open
// elements, should the page draw it unescaped.
const hostileName = `"'><img/src=x/onerror=alert(1)><b>`

// TestBrowserAttackCrossSitePageSpendsTheMeshPage: the operator has the
// mesh page of a (served on 127.0.0.1) open, and visits another web site
// (here a page served from http://localhost:PORT, another site to the
// browser). Its script asks a's /api/view, with destinations of its
// choosing, as fast as the browser lets it: a no-cors fetch, whose answer
// it cannot read but which the daemon serves. Before, the daemon answered
// them, pinging the destinations named, and they spent the views of the
// browser's address (10 a second, burst 20), which the operator's page
// shares: the page's own requests were refused 429 while the other site
// kept at it. Now /api/view answers only requests that carry the header
// the page's script sets, which a cross-site page cannot send without a
// CORS preflight the daemon never grants, so its requests are refused
// before they spend anything and the operator's page is answered.
//
// The page also shows a member's service named with markup (hostileName):
// it is drawn as text, no element of it.
func TestBrowserAttackCrossSitePageSpendsTheMeshPage(t *testing.T) {
	bin, l, a, uiAddr := meshPageLab(t)
	l.start("b", "", "--link", a.addr, "--expose", hostileName+"=127.0.0.1:9")
	a.waitRoute(t, "b", anyRoute)

	hostileURL := crossSitePage(t, fmt.Sprintf(`"http://%s/api/view?to=n" + (window.sent %% 50)`, uiAddr))
	page, _ := browser(t, bin)
	if _, err := chromedp.Run(page, chromedp.Navigate("http://"+uiAddr+"/")); err != nil {
		t.Fatalf("load the mesh page: %v", err)
	}
	// The page draws b and its services, the hostile name as text.
	const drawn = `(() => {
		const g = document.getElementById("graph");
		return {
			nodes: g.querySelectorAll('g.node[data-state="up"]').length,
			label: Array.from(g.querySelectorAll("g.node text")).map(e => e.textContent).join("\n"),
			injected: g.querySelectorAll("img, b, script, foreignObject").length,
		};
	})()`
	type drawing struct {
		Nodes    int    `json:"nodes"`
		Label    string `json:"label"`
		Injected int    `json:"injected"`
	}
	var d drawing
	waitUntil(t, "the mesh page to draw b and its services", func() bool {
		rctx, rcancel := context.WithTimeout(page, 10*time.Second)
		defer rcancel()
		got, err := chromedp.Run(rctx, chromedp.Evaluate[drawing](drawn))
		d = got
		return err == nil && d.Nodes == 1 && strings.Contains(d.Label, hostileName)
	})
	if d.Injected != 0 {
		t.Fatalf("a service name made %d elements of the page: %+v", d.Injected, d)
	}

	other, cancelOther := chromedp.NewContext(page)
	defer cancelOther()
	if _, err := chromedp.Run(other, chromedp.Navigate(hostileURL)); err != nil {
		t.Fatalf("load the other site's page: %v", err)
	}
	sent := func() int { return evaluate[int](other, `window.sent`) }
	waitUntil(t, "the other site's page to send 100 requests", func() bool { return sent() >= 100 })

	// While the other site keeps asking, the operator's page asks ten
	// times, as its poll does.
	const ask = `(async () => (await fetch("api/view", {cache: "no-store", headers: {"X-Circuitmesh-Page": "1"}})).status)()`
	refused := 0
	var codes []int
	for range 10 {
		rctx, rcancel := context.WithTimeout(page, 20*time.Second)
		code, err := chromedp.Run(rctx, chromedp.Evaluate[int](ask, chromedp.EvalAwaitPromise))
		rcancel()
		if err != nil {
			t.Fatalf("the mesh page's request: %v", err)
		}
		codes = append(codes, code)
		if code == http.StatusTooManyRequests {
			refused++
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the other site sent %d requests; the mesh page's 10 were answered %v", sent(), codes)
	if refused > 0 {
		t.Errorf("the mesh page was refused %d of 10 views (%v) while another site's page asked for views: another site spends the page's rate", refused, codes)
	}
}
