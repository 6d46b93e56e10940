// Package ui serves the daemon's live mesh page (run --ui ADDR): one HTML
// page, a script and a style sheet embedded in the binary (nothing is
// fetched from the internet), and a JSON endpoint the page polls.
//
// GET /api/view?to=PEER, asked with the header X-Circuitmesh-Page as the
// page's script asks it, answers the mesh graph (node.Graph), its SVG
// picture (package meshgraph) and, when PEER is given, the path a ping to
// PEER took, highlighted in the picture. The graph is gathered at most
// once per second whatever the number of pages polling, and encoded and
// drawn once per graph and path highlighted, not once per request.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/httpserve"
	"github.com/circuitmesh/circuitmesh/internal/bucket"
	"github.com/circuitmesh/circuitmesh/node"
)

//go:embed assets
var assets embed.FS

// Source is what the page shows; *node.Node implements it.
type Source interface {
	Topology(ctx context.Context, opt node.TopologyOptions) (node.Graph, error)
	Ping(ctx context.Context, peer string) (node.PingResult, error)
}

// View is the answer of /api/view.
type View struct {
	Graph node.Graph `json:"graph"`
	// To is the destination asked for; Path the nodes a ping to it
	// crossed (source first), or PathError why there is none.
	To        string   `json:"to,omitempty"`
	Path      []string `json:"path,omitempty"`
	PathError string   `json:"path_error,omitempty"`
	RTTNS     int64    `json:"rtt_ns,omitempty"`
	// SVG is the picture, the path highlighted.
	SVG string `json:"svg"`
}

// refresh is how long a gathered graph or a ping's answer is reused at
// least; a graph of n nodes is reused for n × gatherPerNode if longer, so
// that the page, however often it is asked, opens on average at most one
// circuit per gatherPerNode in the mesh and one per refresh to each node.
const (
	refresh       = time.Second
	gatherPerNode = 50 * time.Millisecond
)

// Rates of new pings in all, and of views per client address and in all.
var (
	pingRate          = httpserve.Rate{PerSecond: 1, Burst: 3}
	viewsPerSource    = httpserve.Rate{PerSecond: 10, Burst: 20}
	viewsTotal        = httpserve.Rate{PerSecond: 40, Burst: 80}
	errTooManyPings   = errors.New("too many paths asked for: try again in a second")
	errTooManyTargets = errors.New("too many destinations asked for at once")
)

// queryTimeout bounds a graph gathering and a path ping.
const queryTimeout = 5 * time.Second

type handler struct {
	src Source

	pmu    sync.Mutex
	probes map[string]*probe // by destination
	pings  bucket.Bucket     // new pings (pingRate)

	mu    sync.Mutex // held while gathering: one gathering at a time
	last  node.Graph
	lastT time.Time

	drawn drawing // of the last graph
}

// Handler serves the page and its API for src. It checks neither the
// Host header nor pageHeader: Serve puts both checks in front of it.
func Handler(src Source) http.Handler {
	h := &handler{src: src, pings: bucket.Full(pingRate.PerSecond, pingRate.Burst, time.Now())}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.Handle("GET /api/view", httpserve.RateLimit(http.HandlerFunc(h.view), viewsPerSource, viewsTotal))
	return securityHeaders(mux)
}

// securityHeaders keeps the page from loading anything but its own files.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// pageHeader is the header the page's script sets on its API requests.
// A page of another site cannot send it: a fetch of another origin with
// it needs a CORS preflight, which the daemon never grants, and an image,
// a form or a no-cors fetch cannot set it.
const pageHeader = "X-Circuitmesh-Page"

// pageRequestsOnly refuses API requests without pageHeader, before they
// spend a view of the browser's address or ask for a ping. Without it,
// any web site the operator visited could ask for views and pings with
// the operator's browser, as fast as the browser sends them, and spend
// the views the page's own address gets (viewsPerSource).
func pageRequestsOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api") && r.Header.Get(pageHeader) == "" {
			http.Error(w, "the mesh page's API answers the page's own requests only (header "+pageHeader+")", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// graph answers the mesh graph, gathered again once the last one is older
// than its reuse time. A gathering runs to its end (queryTimeout) whether
// or not the request that started it is still there, and its graph serves
// the requests after it: under the request's context, a client that asked
// and left at once ended the gathering before any answer came, so nothing
// was kept and its next request, which it may send at once, gathered
// again, opening a circuit to every node each time.
func (h *handler) graph() (node.Graph, time.Time, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastT.IsZero() && time.Since(h.lastT) < max(refresh, time.Duration(len(h.last.Nodes))*gatherPerNode) {
		return h.last, h.lastT, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	g, err := h.src.Topology(ctx, node.TopologyOptions{Timeout: 2 * time.Second})
	if err != nil {
		return g, time.Time{}, err
	}
	h.last, h.lastT = g, time.Now()
	return g, h.lastT, nil
}

// view answers a View: the graph and its picture as drawn for the graph
// (drawing), then the fields of the request's path.
func (h *handler) view(w http.ResponseWriter, r *http.Request) {
	g, at, err := h.graph()
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	// View's fields but the graph and its picture.
	var v struct {
		To        string   `json:"to,omitempty"`
		Path      []string `json:"path,omitempty"`
		PathError string   `json:"path_error,omitempty"`
		RTTNS     int64    `json:"rtt_ns,omitempty"`
	}
	v.To = r.URL.Query().Get("to")
	if len(v.To) > 255 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "destination name too long"})
		return
	}
	if v.To != "" && v.To != g.Origin {
		res, err := h.ping(r.Context(), v.To)
		if err != nil {
			v.PathError = err.Error()
		} else {
			v.Path, v.RTTNS = res.Path, int64(res.RTT)
		}
	}
	graph, svg, err := h.drawn.get(g, at, v.Path)
	if err == nil {
		var rest []byte
		if rest, err = json.Marshal(v); err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			for _, b := range [][]byte{[]byte(`{"graph":`), graph, []byte(`,"svg":`), svg, viewRest(rest), []byte("\n")} {
				w.Write(b)
			}
			return
		}
	}
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
}

// viewRest is the JSON object rest as the end of an object already open:
// its fields after a comma, or only the closing brace.
func viewRest(rest []byte) []byte {
	if len(rest) <= 2 { // {}
		return []byte("}")
	}
	return append([]byte(","), rest[1:]...)
}

// maxProbes bounds the destinations whose last ping is remembered.
const maxProbes = 256

// probe is one ping to a destination, shared by every request that asks
// for it while it runs and for refresh after.
type probe struct {
	done chan struct{}
	at   time.Time // when it finished
	res  node.PingResult
	err  error
}

// ping answers the path to peer: at most one ping per destination is in
// flight, and its answer is reused for refresh, so pages polling (or a
// client hammering the endpoint) cannot make the node open a circuit per
// request.
func (h *handler) ping(ctx context.Context, peer string) (node.PingResult, error) {
	h.pmu.Lock()
	p := h.probes[peer]
	if p == nil || (!p.at.IsZero() && time.Since(p.at) >= refresh) {
		if p == nil && len(h.probes) >= maxProbes {
			for k, q := range h.probes {
				if !q.at.IsZero() && time.Since(q.at) >= refresh {
					delete(h.probes, k)
				}
			}
			if len(h.probes) >= maxProbes {
				h.pmu.Unlock()
				return node.PingResult{}, errTooManyTargets
			}
		}
		if h.pings.Refill(time.Now()).Tokens < 1 {
			h.pmu.Unlock()
			return node.PingResult{}, errTooManyPings
		}
		h.pings.Tokens--
		if h.probes == nil {
			h.probes = make(map[string]*probe)
		}
		p = &probe{done: make(chan struct{})}
		h.probes[peer] = p
		h.pmu.Unlock()
		// Detached from the request: other requests wait for this answer.
		pctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		res, err := h.src.Ping(pctx, peer)
		cancel()
		h.pmu.Lock()
		p.res, p.err, p.at = res, err, time.Now()
		h.pmu.Unlock()
		close(p.done)
		return res, err
	}
	h.pmu.Unlock()
	select {
	case <-p.done:
		h.pmu.Lock()
		defer h.pmu.Unlock()
		return p.res, p.err
	case <-ctx.Done():
		return node.PingResult{}, ctx.Err()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Serve serves the page on the TCP address addr until stop is called. It
// returns the bound address.
func Serve(addr string, src Source, log *slog.Logger) (bound net.Addr, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	if !httpserve.Loopback(ln.Addr().String()) {
		log.Warn("the mesh page has no authentication: anyone who reaches it sees the topology and can ask for pings", "addr", ln.Addr().String())
	}
	stop = httpserve.Serve(ln, httpserve.LiteralHostOnly("the mesh page answers only to an IP address or localhost in the URL", nil, pageRequestsOnly(Handler(src))), httpserve.Default, "mesh page", log)
	log.Info("serving the mesh page", "url", "http://"+ln.Addr().String()+"/")
	return ln.Addr(), stop, nil
}
