package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds a Chromium or Chrome binary, or "".
func chromium() string {
	if p := os.Getenv("CIRCUITMESH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where the browser test keeps its screenshots:
// $CIRCUITMESH_ARTIFACTS when set (.ci/run sets it), else the test's
// artifact directory, kept under -outputdir with `go test -artifacts`.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("CIRCUITMESH_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

// pageState is what the page draws, read from its DOM.
type pageState struct {
	Updates int      `json:"updates"`
	Up      []string `json:"up"`   // nodes drawn as answering
	Down    []string `json:"down"` // nodes drawn as unreachable
	Links   []string `json:"links"`
	Strokes []string `json:"strokes"` // per link: quality=colour of its line
	OnPath  []string `json:"on_path"`
	Path    string   `json:"path"`
	Status  string   `json:"status"`
}

const readPage = `(() => {
	const q = s => Array.from(document.querySelectorAll(s));
	return {
		updates: Number(document.body.dataset.updates || 0),
		up: q('#graph g.node:not([data-state="down"])').map(e => e.dataset.node).sort(),
		down: q('#graph g.node[data-state="down"]').map(e => e.dataset.node).sort(),
		links: q('#graph g.link').map(e => e.dataset.a + "-" + e.dataset.b).sort(),
		strokes: q('#graph g.link').map(e => e.dataset.quality + "=" + e.querySelector("line:last-of-type").getAttribute("stroke")),
		on_path: q('#graph g.link.on-path').map(e => e.dataset.a + "-" + e.dataset.b).sort(),
		path: document.getElementById("path").textContent,
		status: document.getElementById("status").textContent,
	};
})()`

// meshPageLab finds Chromium (bin) and starts a lab whose daemon a serves
// the mesh page on uiAddr.
func meshPageLab(t *testing.T) (bin string, l *lab, a *daemon, uiAddr string) {
	t.Helper()
	if bin = chromium(); bin == "" {
		toolMissing(t, "no Chromium: install Debian's chromium package (or set CIRCUITMESH_CHROMIUM) to run the mesh page in a headless browser")
	}
	l = newLab(t, "ui")
	a = l.start("a", "", "--ui", "127.0.0.1:0")
	uiAddr = strings.TrimSuffix(strings.TrimPrefix(a.logged(t, "serving the mesh page", "url"), "http://"), "/")
	return bin, l, a, uiAddr
}

func TestBrowserMeshPageFollowsTheMesh(t *testing.T) {
	bin, l, a, uiAddr := meshPageLab(t)
	b := l.start("b", "", "--link", a.addr)
	c := l.start("c", "", "--link", b.addr)
	d := l.start("d", "", "--link", c.addr, "--expose", "web=127.0.0.1:9")
	e := l.start("e", "", "--link", a.addr, "--link", d.addr)
	a.waitRoute(t, "d", anyRoute)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+uiAddr+"/")); err != nil {
		t.Fatalf("load the page: %v", err)
	}
	var st pageState
	// waitPage polls the DOM until ok holds.
	waitPage := func(what string, ok func(pageState) bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			got, err := chromedp.Run(rctx, chromedp.Evaluate[pageState](readPage))
			rcancel()
			if err == nil {
				st = got
				if ok(st) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed %s: %+v (last error %v)", what, st, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		defer rcancel()
		png, err := chromedp.Run(rctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(artifactDir(t), name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of the page: %s", p)
	}

	all := []string{"a-b", "a-e", "b-c", "c-d", "d-e"}
	waitPage("the five nodes and their links", func(s pageState) bool {
		return slices.Equal(s.Up, []string{"a", "b", "c", "d", "e"}) && slices.Equal(s.Links, all) && len(s.Down) == 0
	})
	if !strings.Contains(st.Status, "seen from a") {
		t.Fatalf("status line %q", st.Status)
	}
	// Every link is drawn in the colour of its quality class. (Which class
	// a loopback link gets follows its measured RTT, so on a loaded
	// machine it can be fair: the class itself is tested in links.)
	classColour := map[string]string{"good": "#2e7d32", "fair": "#f9a825", "poor": "#c62828"}
	for _, s := range st.Strokes {
		class, colour, _ := strings.Cut(s, "=")
		if want, ok := classColour[class]; !ok || colour != want {
			t.Fatalf("a link is drawn as %s, want a quality class (good, fair, poor) in its colour %v: %v", s, classColour, st.Strokes)
		}
	}

	// Ask for the path to c: a ping recorded it, and its links are drawn
	// highlighted.
	pick := `(() => { const s = document.getElementById("dest"); s.value = "c"; s.dispatchEvent(new Event("change")); return true; })()`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](pick)); err != nil {
		t.Fatalf("choose c as the destination: %v", err)
	}
	waitPage("the path to c", func(s pageState) bool {
		return strings.HasPrefix(s.Path, "a → ") && strings.Contains(s.Path, " → c") && len(s.OnPath) >= 2
	})
	for _, l := range st.OnPath {
		if !slices.Contains(all, l) {
			t.Fatalf("highlighted link %s is not a link of the mesh", l)
		}
	}
	screenshot("mesh-ui.png")

	// Kill c: its links go, the page shows it unreachable or drops it, and
	// the path to c ends in an error.
	c.cmd.Process.Kill()
	<-c.exited
	before := st.Updates
	waitPage("the mesh without c", func(s pageState) bool {
		return s.Updates > before && slices.Equal(s.Links, []string{"a-b", "a-e", "d-e"}) &&
			slices.Equal(s.Up, []string{"a", "b", "d", "e"}) && !strings.Contains(s.Path, "→")
	})
	screenshot("mesh-ui-after-kill.png")

	// A new node links to b and e: the page draws it and its links.
	l.start("f", "", "--link", b.addr, "--link", e.addr)
	before = st.Updates
	waitPage("f and its links", func(s pageState) bool {
		return s.Updates > before && slices.Equal(s.Links, []string{"a-b", "a-e", "b-f", "d-e", "e-f"}) &&
			slices.Equal(s.Up, []string{"a", "b", "d", "e", "f"})
	})
	screenshot("mesh-ui-after-join.png")
}

// toolMissing skips t for want of an outside tool, or fails it when
// CIRCUITMESH_REQUIRE_TOOLS is set (.ci/run sets it): there a test that
// could not run must not count as passed.
func toolMissing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CIRCUITMESH_REQUIRE_TOOLS") != "" {
		t.Fatal(why + " (CIRCUITMESH_REQUIRE_TOOLS is set: the test must run)")
	}
	t.Skip(why)
}
