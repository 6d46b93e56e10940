// Package httpserve serves the daemon's HTTP endpoints that listen on TCP
// (/metrics, the mesh page), where anyone who reaches the port is a
// client: each connection is bounded in time (reading the request,
// writing the answer, idling between requests) and the connections open
// at once are bounded, in all and per source address, so that a client
// cannot hold goroutines, buffers and file descriptors of the daemon
// without end.
package httpserve

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// Limits bound what the clients of one server hold.
type Limits struct {
	// MaxConns bounds the connections open at once, all clients together;
	// one more is closed as soon as it is accepted.
	MaxConns int
	// MaxConnsPerSource bounds the connections open at once from one
	// source (an IPv4 address or an IPv6 /64).
	MaxConnsPerSource int
	// ReadHeaderTimeout bounds reading a request's header, ReadTimeout
	// the whole request, WriteTimeout writing its answer, IdleTimeout a
	// kept-alive connection waiting for the next request.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// Default limits: a Prometheus server or a few browsers need a handful of
// connections; a /metrics answer or a mesh page view takes well under the
// timeouts (the page's graph gathering and ping are bounded at 5 s each).
var Default = Limits{
	MaxConns:          64,
	MaxConnsPerSource: 8,
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       60 * time.Second,
}

// Serve answers requests on ln with h under lim until stop is called,
// which closes ln and every connection and waits for the server. what
// names the server in log lines; connections refused at a bound are
// logged at WARN at most once per minute.
func Serve(ln net.Listener, h http.Handler, lim Limits, what string, log *slog.Logger) (stop func()) {
	cl := &connLimiter{
		Listener: ln, lim: lim, what: what,
		bySource: make(map[netip.Prefix]int),
		refusals: ratelog.New(log, time.Minute, 1),
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn(what+" server stopped", "err", err)
		}
	}()
	return func() {
		srv.Close()
		<-done
	}
}

// connLimiter is a listener that closes the connections beyond its
// bounds as soon as they are accepted.
type connLimiter struct {
	net.Listener
	lim      Limits
	what     string
	refusals *ratelog.Log

	mu       sync.Mutex
	total    int
	bySource map[netip.Prefix]int
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := links.SourcePrefix(c.RemoteAddr())
		l.mu.Lock()
		full := l.total >= l.lim.MaxConns
		share := l.bySource[src] >= l.lim.MaxConnsPerSource
		if full || share {
			l.mu.Unlock()
			c.Close()
			l.refusals.Warn("", l.what+": refused a connection at the bound of connections open", "remote", c.RemoteAddr(),
				"all_sources_full", full, "max", l.lim.MaxConns, "max_per_source", l.lim.MaxConnsPerSource)
			continue
		}
		l.total++
		l.bySource[src]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(src) }}, nil
	}
}

func (l *connLimiter) release(src netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
}

// limitedConn gives its place back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
