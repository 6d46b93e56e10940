package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/httpserve"
	"github.com/circuitmesh/circuitmesh/node"
)

// meshTimeout bounds pings, graph gatherings and circuit opens made for
// the CLI, within RequestTimeout.
const meshTimeout = 15 * time.Second

// Server serves the admin API for one node and owns the exposes and
// forwards made through it (from flags or at runtime).
type Server struct {
	node Node
	log  *slog.Logger
	http *http.Server

	mu       sync.Mutex
	exposed  map[string]exposed // by service
	forwards map[string]forward // by requested listen address, or bound when its port is 0
	circuits map[net.Conn]struct{}
	dials    int // dial requests and circuits, at most MaxDialCircuits
	closed   bool
}

type exposed struct {
	Expose
	stop func() error
}

type forward struct {
	Forward
	stop func() error
}

// NewServer returns a server for n; call Serve to accept requests.
func NewServer(n Node, log *slog.Logger) *Server {
	s := &Server{
		node:     n,
		log:      log,
		exposed:  make(map[string]exposed),
		forwards: make(map[string]forward),
		circuits: make(map[net.Conn]struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Status()) })
	mux.HandleFunc("GET "+PathPeers, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Peers()) })
	mux.HandleFunc("GET "+PathLinks, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Links()) })
	mux.HandleFunc("GET "+PathServices, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.services()) })
	mux.HandleFunc("POST "+PathExpose, s.handleExpose)
	mux.HandleFunc("DELETE "+PathExpose, s.handleUnexpose)
	mux.HandleFunc("POST "+PathForward, s.handleForward)
	mux.HandleFunc("DELETE "+PathForward, s.handleUnforward)
	mux.HandleFunc("GET "+PathPing, s.handlePing)
	mux.HandleFunc("GET "+PathGraph, s.handleGraph)
	mux.HandleFunc("POST "+PathLinkCost, s.handleLinkCost)
	mux.HandleFunc("POST "+PathDial, s.handleDial)
	mux.HandleFunc("GET "+PathPolicyCheck, s.handlePolicyCheck)
	mux.HandleFunc("GET "+PathKeys, s.handleKeys)
	mux.HandleFunc("POST "+PathKeys, s.handleKeyOp)
	mux.HandleFunc("POST "+PathReload, func(w http.ResponseWriter, r *http.Request) {
		var res ReloadResult
		var err error
		if r, ok := n.(Reloader); ok {
			res.Policy, err = r.Reload()
		} else {
			err = n.ReloadIdentity()
		}
		if err != nil {
			s.log.Warn("reload failed: nothing changed, the identity and the policy in force are kept", "err", err)
			writeError(w, err)
			return
		}
		res.Status = n.Status()
		writeJSON(w, res)
	})
	// ReadTimeout also ends the request's context: it must leave the
	// handlers their meshTimeout.
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: RequestTimeout,
		WriteTimeout: RequestTimeout, IdleTimeout: IdleTimeout}
	// One request a connection: a client that keeps its connections
	// (one per command, or a program making a client per request) would
	// otherwise hold places of MaxConns until IdleTimeout; connecting
	// again to the local socket costs next to nothing.
	s.http.SetKeepAlivesEnabled(false)
	return s
}

// Serve answers requests on ln until Close, on at most MaxConns
// connections at once.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(limitConns(ln, MaxConns, s.log))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving, ends the circuits opened for the CLI and stops every
// expose and forward.
func (s *Server) Close() error {
	err := s.http.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.circuits {
		c.Close()
	}
	ex, fw := s.exposed, s.forwards
	s.exposed, s.forwards = map[string]exposed{}, map[string]forward{}
	s.mu.Unlock()
	var errs []error
	for _, e := range ex {
		errs = append(errs, e.stop())
	}
	for _, f := range fw {
		errs = append(errs, f.stop())
	}
	return errors.Join(append(errs, err)...)
}

// AddExpose publishes service backed by the TCP address target.
func (s *Server) AddExpose(service, target string) error {
	if err := ValidateService(service); err != nil {
		return err
	}
	if err := ValidateTarget(context.Background(), target); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.exposed[service]; ok {
		return fmt.Errorf("%w: service %q is already exposed (unexpose it first)", ErrConflict, service)
	}
	stop, err := s.node.Expose(service, target)
	if err != nil {
		return fmt.Errorf("expose %q: %w", service, err)
	}
	s.exposed[service] = exposed{Expose{service, target}, stop}
	s.log.Info("exposed local TCP service", "service", service, "target", target)
	return nil
}

// RemoveExpose withdraws an exposed service.
func (s *Server) RemoveExpose(service string) error {
	s.mu.Lock()
	e, ok := s.exposed[service]
	delete(s.exposed, service)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("service %q is not exposed: %w", service, ErrNotFound)
	}
	s.log.Info("withdrew exposed service", "service", service)
	return e.stop()
}

// AddForward listens on the TCP address listen and tunnels connections to
// service on peer. It returns the bound address.
func (s *Server) AddForward(listen, peer, service string) (string, error) {
	if err := ValidateForward(listen, peer, service); err != nil {
		return "", err
	}
	if err := ValidateListenHost(context.Background(), listen); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.forwards[listen]; ok {
		return "", fmt.Errorf("%w: %s is already forwarded (unforward it first)", ErrConflict, listen)
	}
	addr, stop, err := s.node.Forward(listen, peer, service)
	if err != nil {
		return "", err // names the listen address and the destination
	}
	bound := addr.String()
	// A port the kernel picked is known by the one it bound: a second
	// forward of HOST:0 binds another.
	key := listen
	if _, port, err := net.SplitHostPort(listen); err == nil {
		if p, err := strconv.Atoi(port); err == nil && p == 0 {
			key = bound
		}
	}
	s.forwards[key] = forward{Forward{bound, peer, service}, stop}
	if !httpserve.Loopback(bound) {
		s.log.Warn("the forward listens beyond loopback: whoever reaches it opens circuits to "+peer+"/"+service+" as this node",
			"listen", bound)
	}
	s.log.Info("forwarding local TCP port", "listen", bound, "peer", peer, "service", service)
	return bound, nil
}

// RemoveForward stops the forward listening on listen (the address as
// given or as bound).
func (s *Server) RemoveForward(listen string) error {
	s.mu.Lock()
	var f forward
	found := false
	for k, v := range s.forwards {
		if k == listen || v.Listen == listen {
			f, found = v, true
			delete(s.forwards, k)
			break
		}
	}
	s.mu.Unlock()
	if !found {
		return fmt.Errorf("nothing forwards %s: %w", listen, ErrNotFound)
	}
	s.log.Info("stopped forward", "listen", f.Listen)
	return f.stop()
}

func (s *Server) services() Services {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Services{Services: s.node.Services(), Exposed: []Expose{}, Forwards: []Forward{}}
	if out.Services == nil {
		out.Services = []string{}
	}
	for _, e := range s.exposed {
		out.Exposed = append(out.Exposed, e.Expose)
	}
	for _, f := range s.forwards {
		out.Forwards = append(out.Forwards, f.Forward)
	}
	sort.Slice(out.Exposed, func(i, j int) bool { return out.Exposed[i].Service < out.Exposed[j].Service })
	sort.Slice(out.Forwards, func(i, j int) bool { return out.Forwards[i].Listen < out.Forwards[j].Listen })
	return out
}

func (s *Server) handleExpose(w http.ResponseWriter, r *http.Request) {
	var e Expose
	if !readJSON(w, r, &e) {
		return
	}
	if err := s.AddExpose(e.Service, e.Target); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, e)
}

func (s *Server) handleUnexpose(w http.ResponseWriter, r *http.Request) {
	if err := s.RemoveExpose(r.URL.Query().Get("service")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleForward(w http.ResponseWriter, r *http.Request) {
	var f Forward
	if !readJSON(w, r, &f) {
		return
	}
	bound, err := s.AddForward(f.Listen, f.Peer, f.Service)
	if err != nil {
		writeError(w, err)
		return
	}
	f.Listen = bound
	writeJSON(w, f)
}

func (s *Server) handleUnforward(w http.ResponseWriter, r *http.Request) {
	if err := s.RemoveForward(r.URL.Query().Get("listen")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	peer := r.URL.Query().Get("peer")
	if err := validatePeer(peer); err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), meshTimeout)
	defer cancel()
	res, err := s.node.Ping(ctx, peer)
	if err != nil {
		writeError(w, err) // the node's error names the peer
		return
	}
	writeJSON(w, Ping{Peer: peer, OpenNS: int64(res.Open), RTTNS: int64(res.RTT), Path: res.Path})
}

func (s *Server) handleGraph(w http.ResponseWriter, r *http.Request) {
	var opt node.TopologyOptions
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > meshTimeout {
			writeError(w, fmt.Errorf("timeout %q: want a duration up to %v: %w", v, meshTimeout, ErrBadRequest))
			return
		}
		opt.Timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), meshTimeout)
	defer cancel()
	g, err := s.node.Topology(ctx, opt)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, g)
}

func (s *Server) handleLinkCost(w http.ResponseWriter, r *http.Request) {
	var lc LinkCost
	if !readJSON(w, r, &lc) {
		return
	}
	if err := s.node.SetLinkCost(lc.Peer, lc.Cost); err != nil {
		writeError(w, fmt.Errorf("%w: %w", err, ErrBadRequest))
		return
	}
	writeJSON(w, lc)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, fmt.Errorf("request body: %v: %w", err, ErrBadRequest))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(statusOf(err))
	json.NewEncoder(w).Encode(ErrorBody{Error: err.Error()})
}
