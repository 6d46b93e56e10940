// Package ui serves the daemon's live mesh page (run --ui ADDR): one HTML
// page, a script and a style sheet embedded in the binary (nothing is
// fetched from the internet), and a JSON endpoint the page polls.
//
// GET /api/view?to=PEER answers the mesh graph (node.Graph), its SVG
// picture (package meshgraph) and, when PEER is given, the path a ping to
// PEER took, highlighted in the picture. The graph is gathered at most
// once per second whatever the number of pages polling.
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
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/meshgraph"
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

// refresh is how long a gathered graph is reused.
const refresh = time.Second

// queryTimeout bounds a graph gathering and a path ping.
const queryTimeout = 5 * time.Second

type handler struct {
	src Source

	mu    sync.Mutex // held while gathering: one gathering at a time
	last  node.Graph
	lastT time.Time
}

// Handler serves the page and its API for src.
func Handler(src Source) http.Handler {
	h := &handler{src: src}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/view", h.view)
	return securityHeaders(mux)
}

// securityHeaders keeps the page from loading anything but its own files.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// loopbackHostOnly refuses requests whose Host header does not name the
// loopback interface. A page bound to loopback is meant for this host's
// browser; without the check, any web site the browser visits could read
// the topology through a DNS name it re-points at 127.0.0.1 (DNS rebinding).
func loopbackHostOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
		if host != "localhost" && (err != nil || !ip.IsLoopback()) {
			http.Error(w, "the mesh page answers only to a loopback host name", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (h *handler) graph(ctx context.Context) (node.Graph, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastT.IsZero() && time.Since(h.lastT) < refresh {
		return h.last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	g, err := h.src.Topology(ctx, node.TopologyOptions{Timeout: 2 * time.Second})
	if err != nil {
		return g, err
	}
	h.last, h.lastT = g, time.Now()
	return g, nil
}

func (h *handler) view(w http.ResponseWriter, r *http.Request) {
	g, err := h.graph(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	v := View{Graph: g, To: r.URL.Query().Get("to")}
	if len(v.To) > 255 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "destination name too long"})
		return
	}
	if v.To != "" && v.To != g.Origin {
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		res, err := h.src.Ping(ctx, v.To)
		cancel()
		if err != nil {
			v.PathError = err.Error()
		} else {
			v.Path, v.RTTNS = res.Path, int64(res.RTT)
		}
	}
	var b strings.Builder
	meshgraph.SVG(&b, g, meshgraph.SVGOptions{Path: v.Path})
	v.SVG = b.String()
	writeJSON(w, http.StatusOK, v)
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
	h := Handler(src)
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && ap.Addr().IsLoopback() {
		h = loopbackHostOnly(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("mesh page server stopped", "err", err)
		}
	}()
	log.Info("serving the mesh page", "url", "http://"+ln.Addr().String()+"/")
	return ln.Addr(), func() {
		srv.Close()
		<-done
	}, nil
}
