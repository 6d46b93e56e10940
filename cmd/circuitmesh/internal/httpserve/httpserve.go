// Package httpserve serves the daemon's HTTP endpoints that listen on TCP
// (/metrics, the mesh page), where anyone who reaches the port is a
// client: each connection is bounded in time (reading the request,
// writing the answer, idling between requests) and the connections open
// at once are bounded, in all and per source address, so that a client
// cannot hold goroutines, buffers and file descriptors of the daemon
// without end. RateLimit bounds the requests a costly handler answers.
package httpserve

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/internal/bucket"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/ratelog"
)

// Loopback says whether a listener's address (HOST:PORT) is on a loopback interface
// only: otherwise whoever reaches the host's other addresses is a client
// too (":PORT" listens on every interface).
func Loopback(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().IsLoopback()
}

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
	// MaxHeaderBytes bounds a request's header (net/http reads up to
	// about 8 KiB beyond it, its slop and read buffer, before answering
	// 431): what a connection makes the server parse and hold before any
	// handler or rate runs.
	MaxHeaderBytes int
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
	// A scraper's header is under 1 KiB, a browser's too but for the
	// cookies other local servers set for the host, for which 8 KiB
	// leaves room; at net/http's default (1 MiB) a header of short
	// distinct fields held about 17 MiB of the daemon's heap per
	// connection until the header timeout, about 1 GiB for MaxConns.
	MaxHeaderBytes: 8 << 10,
}

// Serve answers requests on ln with h under lim until stop is called,
// which closes ln and every connection and waits for the server. what
// names the server in log lines; connections refused at a bound are
// logged at WARN at most once per minute.
func Serve(ln net.Listener, h http.Handler, lim Limits, what string, log *slog.Logger) (stop func()) {
	cl := Limit(ln, lim, what, log)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
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

// Limit returns ln with lim's bounds on the connections open at once
// (MaxConns, MaxConnsPerSource): a connection beyond them is closed as
// soon as it is accepted, and logged at WARN at most once per minute,
// what naming the server. A connection's place is given back at its
// first Close.
func Limit(ln net.Listener, lim Limits, what string, log *slog.Logger) net.Listener {
	return &connLimiter{
		Listener: ln, lim: lim, what: what,
		bySource: make(map[netip.Prefix]int),
		refusals: ratelog.New(log, time.Minute, 1),
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
			l.refusals.Warn("", l.what+": refused a connection at the bound of connections open", "remote", c.RemoteAddr().String(),
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

// CloseWrite half-closes the connection (TCP or a unix socket's), as
// net/http does before closing one whose request it refused, so that the
// client reads the error answer instead of a reset, and as a relayed
// stream's end does.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// LiteralHostOnly refuses, with 421 Misdirected Request and the text
// refusal, requests whose Host header is a DNS name other than localhost
// and the names in also (compared without case). Without the check, any
// web site the browser visits could read the endpoint through a name it
// re-points at this address (DNS rebinding): the browser takes the
// answer as the site's own. A rebinding attack needs a name of its
// own, so IP literals and names the operator chose are safe to serve.
func LiteralHostOnly(refusal string, also []string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(host); err == nil {
			host = hh
		}
		_, err := netip.ParseAddr(strings.Trim(host, "[]"))
		if err != nil && host != "localhost" && !slices.ContainsFunc(also, func(a string) bool { return strings.EqualFold(a, host) }) {
			http.Error(w, refusal, http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NoWebPages answers with h only the requests no web page made: a
// scraper's, and a browser's the user made by typing the URL or by
// clicking a link (a top-level navigation the user started,
// Sec-Fetch-User "?1", whose answer the page linking cannot read). A
// request a browser marks as made by a page (its Fetch Metadata:
// Sec-Fetch-Site other than "none", and not such a navigation, so also a
// window a page's script moves on its own) is refused 403 before h or
// any rate runs. Without it, a page of any site the operator's
// browser visits could ask for the endpoint with no-cors fetches as fast
// as the browser sends them, spending the rate of the browser's address,
// which a scraper on the same host shares. Requests without Fetch
// Metadata are not told apart: a browser sends none to a plain-HTTP
// origin of a DNS name (such as a name rebound to the endpoint's
// address), and old browsers none at all.
func NoWebPages(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if madeByWebPage(r.Header) {
			http.Error(w, "this endpoint answers no request a web page makes (Sec-Fetch-Site "+r.Header.Get("Sec-Fetch-Site")+
				"): open its URL in the browser's address bar", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// madeByWebPage reports whether a browser says, in the Fetch Metadata
// headers of a request, that a web page made it: anything but the user's
// own navigation ("none") and a top-level navigation the user started
// from another page (a click: Sec-Fetch-User "?1"), whose answer that
// page cannot read unless it is of this origin. Without the user's
// click, a page that opened one window could move it to the endpoint in
// a loop.
func madeByWebPage(h http.Header) bool {
	switch h.Get("Sec-Fetch-Site") {
	case "", "none":
		return false
	case "cross-site", "same-site":
		return h.Get("Sec-Fetch-Mode") != "navigate" || h.Get("Sec-Fetch-Dest") != "document" || h.Get("Sec-Fetch-User") != "?1"
	}
	return true
}

// Rate is a request rate: Burst requests at once, then PerSecond.
type Rate struct {
	PerSecond float64
	Burst     float64
}

// maxRateSources bounds the sources whose request rate is remembered.
const maxRateSources = 4096

// RateLimit answers a request with h only while its source (as for
// connections) and all sources together are within their rates; others
// get 429 Too Many Requests. It is for handlers whose answer costs the
// daemon far more than the request costs the client, such as /metrics
// (gathering and encoding every metric).
func RateLimit(h http.Handler, perSource, total Rate) http.Handler {
	return &rateLimiter{h: h, perSource: perSource, total: bucket.Full(total.PerSecond, total.Burst, time.Now()), sources: make(map[netip.Prefix]*bucket.Bucket)}
}

type rateLimiter struct {
	h         http.Handler
	perSource Rate

	mu      sync.Mutex
	total   bucket.Bucket
	sources map[netip.Prefix]*bucket.Bucket
}

func (rl *rateLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var src netip.Prefix
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		src = links.SourcePrefix(net.TCPAddrFromAddrPort(ap))
	}
	if !rl.allow(src, time.Now()) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	rl.h.ServeHTTP(w, r)
}

// allow takes a token from src's bucket and from the total, or neither.
func (rl *rateLimiter) allow(src netip.Prefix, now time.Time) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	b := rl.sources[src]
	if b == nil {
		if len(rl.sources) >= maxRateSources {
			// A full bucket is the same as a forgotten one.
			for p, o := range rl.sources {
				if o.Refill(now).Tokens >= o.Burst {
					delete(rl.sources, p)
				}
			}
			if len(rl.sources) >= maxRateSources {
				return false
			}
		}
		nb := bucket.Full(rl.perSource.PerSecond, rl.perSource.Burst, now)
		b = &nb
		rl.sources[src] = b
	}
	if b.Refill(now).Tokens < 1 || rl.total.Refill(now).Tokens < 1 {
		return false
	}
	b.Tokens--
	rl.total.Tokens--
	return true
}
