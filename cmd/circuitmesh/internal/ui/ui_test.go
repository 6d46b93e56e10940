package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/node"
	"sync"
	"sync/atomic"
	"time"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestPageIsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to %q: the page must work without the internet", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestViewOfARealNode(t *testing.T) {
	n, err := node.New(node.Config{Name: "solo", Insecure: true, GracePeriod: -1, RouteWait: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(Handler(n))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script src="app.js">`) ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: %d %v\n%s", resp.StatusCode, resp.Header, page)
	}

	view := func(query string) View {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/view" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v View
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /api/view%s: %d %v", query, resp.StatusCode, err)
		}
		return v
	}
	v := view("")
	if v.Graph.Origin != "solo" || len(v.Graph.Nodes) != 1 || !strings.HasPrefix(v.SVG, "<svg ") ||
		!strings.Contains(v.SVG, `data-node="solo" data-state="origin"`) {
		t.Fatalf("view: %+v", v)
	}
	if v := view("?to=nowhere"); len(v.Path) != 0 || !strings.Contains(v.PathError, "no route") {
		t.Fatalf("path to an unknown node: %+v", v)
	}
}

// slowPinger counts pings and holds each until released.
type slowPinger struct {
	pings   atomic.Int32
	release chan struct{}
}

func (s *slowPinger) Topology(context.Context, node.TopologyOptions) (node.Graph, error) {
	return node.Graph{Origin: "a"}, nil
}

func (s *slowPinger) Ping(ctx context.Context, peer string) (node.PingResult, error) {
	s.pings.Add(1)
	<-s.release
	return node.PingResult{Path: []string{"a", peer}}, nil
}

// Many requests for the path to one destination share one ping: a page, or
// anyone hammering the endpoint, cannot make the node open a circuit per
// request.
func TestPathRequestsShareOnePing(t *testing.T) {
	src := &slowPinger{release: make(chan struct{})}
	// Count the requests that reached the server: the ping is released
	// only once all of them are in, so none can come after its answer
	// went stale (refresh), however slowly the machine runs.
	var arrived atomic.Int32
	h := Handler(src)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer func() { // on a failure, let the waiting requests end before srv.Close
		select {
		case <-src.release:
		default:
			close(src.release)
		}
	}()
	const requests = 20
	var wg sync.WaitGroup
	paths := make(chan string, requests)
	for range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + "/api/view?to=b")
			if err != nil {
				paths <- err.Error()
				return
			}
			defer resp.Body.Close()
			var v View
			json.NewDecoder(resp.Body).Decode(&v)
			paths <- strings.Join(v.Path, " ")
		}()
	}
	for deadline := time.Now().Add(time.Minute); src.pings.Load() == 0 || arrived.Load() < requests; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests arrived, %d pings started", arrived.Load(), requests, src.pings.Load())
		}
	}
	close(src.release)
	wg.Wait()
	close(paths)
	for p := range paths {
		if p != "a b" {
			t.Errorf("path %q, want a b", p)
		}
	}
	if n := src.pings.Load(); n != 1 {
		t.Errorf("%d pings for %d requests within the refresh interval, want 1", n, requests)
	}
}

// countingSource is a mesh of n nodes, each linked to the links nodes
// after it, that counts gatherings and pings.
type countingSource struct {
	n, links     int
	graphs, pngs atomic.Int32
}

func (s *countingSource) Topology(context.Context, node.TopologyOptions) (node.Graph, error) {
	s.graphs.Add(1)
	g := node.Graph{Origin: "a"}
	for i := range s.n {
		g.Nodes = append(g.Nodes, node.GraphNode{NodeInfo: node.NodeInfo{Name: fmt.Sprintf("n%d", i)}})
		for j := 1; j <= s.links; j++ {
			g.Links = append(g.Links, node.GraphLink{A: fmt.Sprintf("n%d", i), B: fmt.Sprintf("n%d", (i+j)%s.n), Quality: "good"})
		}
	}
	return g, nil
}

func (s *countingSource) Ping(ctx context.Context, peer string) (node.PingResult, error) {
	s.pngs.Add(1)
	return node.PingResult{Path: []string{"a", peer}}, nil
}

// A client hammering /api/view with ever new destinations, on a mesh of
// 100 nodes: each gathering opens a circuit to every node and each ping
// one, so the page gathers once per 50 ms per node (every 5 s here) and
// pings new destinations at most once a second in all (burst 3), and the
// client's requests beyond its rate are refused (429). Before, it drew a
// gathering every second and a ping per destination per second.
func TestHammeredPageBoundsWhatItOpens(t *testing.T) {
	src := &countingSource{n: 100}
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()
	start := time.Now()
	refused, ok := 0, 0
	for i := 0; time.Since(start) < 2500*time.Millisecond; i++ {
		resp, err := http.Get(fmt.Sprintf("%s/api/view?to=n%d", srv.URL, i%100))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			refused++
		case http.StatusOK:
			ok++
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	el := time.Since(start)
	graphs, pings := src.graphs.Load(), src.pngs.Load()
	t.Logf("in %v: %d views answered, %d refused; %d gatherings of 100 nodes, %d pings", el.Round(time.Millisecond), ok, refused, graphs, pings)
	if graphs != 1 {
		t.Errorf("%d gatherings of a 100-node mesh in %v, want 1 (one per 5 s)", graphs, el.Round(time.Millisecond))
	}
	if limit := int32(el/time.Second) + 3; pings > limit {
		t.Errorf("%d pings to new destinations in %v, want at most %d", pings, el.Round(time.Millisecond), limit)
	}
	if ok > int(viewsPerSource.Burst)+int(el.Seconds()*viewsPerSource.PerSecond)+1 {
		t.Errorf("%d views answered and %d refused in %v: one client is not held to its rate", ok, refused, el.Round(time.Millisecond))
	}
	// 100 requests at once (to a page of a small mesh, quick to draw):
	// the client's burst is answered, the rest refused.
	small := httptest.NewServer(Handler(&countingSource{n: 2}))
	defer small.Close()
	var answered, tooMany atomic.Int32
	var wg sync.WaitGroup
	start = time.Now()
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(small.URL + "/api/view")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				tooMany.Add(1)
			} else {
				answered.Add(1)
			}
		}()
	}
	wg.Wait()
	el = time.Since(start)
	if n := int(answered.Load()); n < int(viewsPerSource.Burst) || n > int(viewsPerSource.Burst)+int(el.Seconds()*viewsPerSource.PerSecond)+1 {
		t.Errorf("100 requests at once in %v: %d answered, %d refused; want the burst of %v answered and the rest beyond the rate refused", el.Round(time.Millisecond), n, tooMany.Load(), viewsPerSource.Burst)
	}
}
