package ui

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// viewAbandons is how many views the client asks for and abandons: within
// its burst of views (viewsPerSource), so none is refused 429.
const viewAbandons = 16

// countedTopology is a real node whose gatherings are counted.
type countedTopology struct {
	*node.Node
	graphs atomic.Int32
}

func (s *countedTopology) Topology(ctx context.Context, opt node.TopologyOptions) (node.Graph, error) {
	s.graphs.Add(1)
	return s.Node.Topology(ctx, opt)
}

// TestAttackAbandonedViewsGatherAgain: a client of the mesh page (anyone
// who reaches its port) asks for /api/view viewAbandons times in a row and
// closes each connection as soon as its request is written. The page is
// served by a real node a linked to b, c and d. Before, each gathering ran
// under the request's context: the client's leaving ended it before any
// answer came, Topology failed, nothing was kept, and the next request
// gathered again, opening info circuits to every node each time, so
// abandoned requests drew a gathering each instead of one a second. Now a
// gathering runs to its own end, whoever asked for it, and is reused.
func TestAttackAbandonedViewsGatherAgain(t *testing.T) {
	a := realNode(t, "a")
	peers := []*node.Node{realNode(t, "b"), realNode(t, "c"), realNode(t, "d")}
	for _, p := range peers {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := a.Link(ctx, p.Addr().String())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Minute); ; {
		if reachable := a.Status().Reachable; reachable == len(peers) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("a reaches %d of its %d neighbours after a minute", reachable, len(peers))
		}
		time.Sleep(10 * time.Millisecond)
	}
	src := &countedTopology{Node: a}
	var served atomic.Int32
	h := Handler(src)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer served.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	before := infoCircuits(t, peers)
	start := time.Now()
	for range viewAbandons {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET /api/view HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for deadline := time.Now().Add(time.Minute); served.Load() < viewAbandons; {
		if time.Now().After(deadline) {
			t.Fatalf("the page handled %d of %d requests after a minute", served.Load(), viewAbandons)
		}
		time.Sleep(10 * time.Millisecond)
	}
	el := time.Since(start)
	// A view the client stayed for still gets the graph.
	resp, err := http.Get(srv.URL + "/api/view")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"name":"d"`) {
		t.Fatalf("a view after the abandoned ones: status %d, %s", resp.StatusCode, body)
	}
	graphs := src.graphs.Load()
	opened := infoCircuits(t, peers) - before
	t.Logf("%d views abandoned in %v: %d gatherings, %d circuits opened at b, c and d", viewAbandons,
		el.Round(time.Millisecond), graphs, opened)
	// One gathering, and one per refresh while the requests came (a
	// starved machine stretches them), and the one after if it fell due.
	if limit := int32(el/refresh) + 2; graphs > limit {
		t.Fatalf("%d abandoned views made the page gather the mesh %d times in %v (%d circuits opened at its nodes), want at most %d",
			viewAbandons, graphs, el.Round(time.Millisecond), opened, limit)
	}
}

// realNode starts an insecure node on loopback, closed when the test ends.
func realNode(t *testing.T, name string) *node.Node {
	t.Helper()
	n, err := node.New(node.Config{Name: name, Insecure: true, GracePeriod: -1, ListenAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// infoCircuits is how many circuits ns accepted or refused in all, as
// their metrics count them.
func infoCircuits(t *testing.T, ns []*node.Node) int {
	t.Helper()
	total := 0
	for _, n := range ns {
		rec := httptest.NewRecorder()
		n.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		sc := bufio.NewScanner(rec.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, `circuitmesh_circuits_opened_total{role="accept"}`) &&
				!strings.HasPrefix(line, "circuitmesh_circuits_refused_total{") {
				continue
			}
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			total += int(v)
		}
	}
	return total
}

// redrawViews is how many views the client asks for after the first:
// within its burst of views (viewsPerSource), so none is refused 429.
const redrawViews = 15

// discardWriter is a ResponseWriter that keeps nothing of the answer
// but its size: what the page allocates for a view is its own.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// TestAttackViewsRedrawTheMesh: a client of the mesh page asks for
// /api/view redrawViews times in a row, within its rate, on a mesh of
// 100 nodes (5 links each). The graph is gathered once; before, each
// view encoded the whole graph and drew its picture again, allocating
// several times the answer's size (about 2 MiB a view for an answer of
// 324 KB, 6 to 11 ms), so that a request of a few dozen bytes made the
// daemon draw the mesh, 40 times a second for all clients together. Now
// the views of one graph share one drawing per path highlighted.
func TestAttackViewsRedrawTheMesh(t *testing.T) {
	src := &countingSource{n: 100, links: 5}
	h := Handler(src)
	ask := func() *discardWriter {
		w := &discardWriter{h: http.Header{}, code: http.StatusOK}
		h.ServeHTTP(w, httptest.NewRequest("GET", "/api/view", nil))
		if w.code != http.StatusOK {
			t.Fatalf("view: status %d", w.code)
		}
		return w
	}
	size := ask().n // the gathering, and the drawing
	perView := 0
	// The views are measured within one graph's reuse time (5 s for 100
	// nodes): on a machine so starved that the graph was gathered again
	// meanwhile, they are measured again.
	for try := 0; ; try++ {
		graphs := src.graphs.Load()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range redrawViews {
			if n := ask().n; n != size {
				t.Fatalf("a view of %d bytes, the first was %d", n, size)
			}
		}
		runtime.ReadMemStats(&after)
		perView = int(after.TotalAlloc-before.TotalAlloc) / redrawViews
		t.Logf("%d views of %d bytes: %d gathering(s) in all, %d bytes allocated a view", redrawViews, size, src.graphs.Load(), perView)
		if src.graphs.Load() == graphs || try == 2 {
			break
		}
	}
	if perView > size/4 {
		t.Fatalf("each view of an answer of %d bytes allocated %d bytes: the page draws the mesh again for every request", size, perView)
	}
}
