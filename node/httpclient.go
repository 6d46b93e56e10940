package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpHostSuffix marks the synthetic host names under which HTTPTransport
// pools connections: one pool per peer and service.
const httpHostSuffix = ".circuitmesh.invalid"

// ErrHTTPURL is returned for a URL HTTPClient cannot send over the mesh:
// not http://PEER/SERVICE/..., or a scheme other than http.
var ErrHTTPURL = errors.New("mesh URL must be http://PEER/SERVICE/path")

// ErrHTTPRedirect is returned by HTTPTransport for a redirect an
// http.Client follows to another peer than the one whose response asked
// for it: HTTPTransport does not open that circuit. A client whose
// CheckRedirect is SamePeerRedirect (HTTPClient's) gets the 3xx response
// itself instead.
var ErrHTTPRedirect = errors.New("mesh HTTP redirect to another peer refused")

// HTTPClient returns an HTTP client whose requests travel over circuits.
// The URL http://PEER/SERVICE/rest?q sends "GET /rest?q" (Host: PEER) to
// the HTTP server behind service SERVICE on node PEER, for example one
// serving n.Listen("web") or a TCP server published with Expose. The
// path after SERVICE keeps its escaping (a %2F stays one), and SERVICE is
// unescaped (http://PEER/a%2Fb/ reaches service "a/b"). Each
// peer/service pair has its own pool of keep-alive circuits (at most 4
// idle), and all pools together keep at most MaxHTTPIdleCircuits idle,
// the one idle longest closed first; a cancelled or timed-out request
// closes its circuit. The clients share one transport per node, so
// calling HTTPClient again is cheap. Redirects are followed as
// SamePeerRedirect allows: within the peer only.
func (n *Node) HTTPClient() *http.Client {
	return &http.Client{Transport: n.HTTPTransport(), CheckRedirect: SamePeerRedirect}
}

// maxRedirects is how many redirects in a row SamePeerRedirect follows,
// as many as http.Client does by default.
const maxRedirects = 10

// SamePeerRedirect is the redirect policy of HTTPClient, for an
// http.Client's CheckRedirect: it follows a redirect (at most 10 in a row)
// only to the peer the first request went to, and hands a redirect to any
// other peer back to the caller as the 3xx response itself, unfollowed.
// Every circuit this node opens carries its own name, which each
// destination's authorization policy trusts: following a peer's redirect
// to another node would open a circuit there as this node, to a URL the
// redirecting peer chose, which that node's policy may deny the
// redirecting peer.
func SamePeerRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if first := via[0].URL; req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// MaxHTTPResponseHeaderBytes bounds the status line and headers of a
// response HTTPTransport reads (1 MiB, http.DefaultMaxHeaderBytes, the
// bound Go's server puts on request headers), so that a destination
// cannot make each request in flight hold up to net/http's default of
// 10 MB. A response beyond it fails the request with net/http's error
// "server response headers exceeded 1048576 bytes; aborted", and its
// circuit is closed.
const MaxHTTPResponseHeaderBytes = http.DefaultMaxHeaderBytes

// MaxHTTPIdleCircuits bounds the keep-alive circuits HTTPTransport keeps
// idle, all peers and services together (a pool per peer/service keeps
// at most 4). Without it, a peer that redirected each request through
// services of its own that the client had not seen yet left an idle
// circuit in a new pool at every hop, each open for the pool's idle
// time (90 s) and counted against this node's circuit limits and, at
// every relay on its path, against the limit of circuits from this node.
const MaxHTTPIdleCircuits = 64

// HTTPTransport is the round tripper behind HTTPClient, for callers that
// build their own http.Client (timeouts, cookie jars). Whatever the
// client's CheckRedirect, it refuses a redirect to another peer than the
// one that answered with it, with ErrHTTPRedirect, so that no peer makes
// this node open a circuit elsewhere as itself: set CheckRedirect to
// SamePeerRedirect to get such a redirect back as the 3xx response, as
// HTTPClient does.
// It reads at most MaxHTTPResponseHeaderBytes of a response's headers. It
// sets no time limit on them (no http.Transport.ResponseHeaderTimeout):
// a long poll answers with its headers only when it has news. Bound a
// request's time with its context or http.Client.Timeout.
func (n *Node) HTTPTransport() http.RoundTripper {
	if m := n.httpTr.Load(); m != nil {
		return m
	}
	m := &meshTransport{base: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			peer, service, err := decodeHTTPHost(addr)
			if err != nil {
				return nil, err
			}
			return n.Dial(ctx, peer, service)
		},
		MaxIdleConns:           MaxHTTPIdleCircuits,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: MaxHTTPResponseHeaderBytes,
	}}
	if !n.httpTr.CompareAndSwap(nil, m) {
		return n.httpTr.Load()
	}
	return m
}

// meshTransport rewrites http://PEER/SERVICE/rest to a request for /rest
// on a connection keyed by peer and service.
type meshTransport struct{ base *http.Transport }

func (m *meshTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		closeBody(req)
		return nil, fmt.Errorf("%s: scheme %q: %w", req.URL.Redacted(), req.URL.Scheme, ErrHTTPURL)
	}
	peer := req.URL.Hostname()
	// Cut the escaped path, so that the rest keeps its encoding: a %2F
	// in it stays one, not a "/" that moves the request to another path.
	rawService, rawRest, _ := strings.Cut(strings.TrimPrefix(req.URL.EscapedPath(), "/"), "/")
	service, err := url.PathUnescape(rawService)
	rest, restErr := url.PathUnescape(rawRest)
	if peer == "" || service == "" || req.URL.Port() != "" || err != nil || restErr != nil {
		closeBody(req)
		return nil, fmt.Errorf("%s: %w", req.URL.Redacted(), ErrHTTPURL)
	}
	// net/http sets Response only on a request it makes to follow a
	// redirect: the response that asked for it, and its request.
	if req.Response != nil && req.Response.Request != nil && req.Response.Request.URL.Host != req.URL.Host {
		closeBody(req)
		return nil, fmt.Errorf("%s: redirected by %s: %w", req.URL.Redacted(), req.Response.Request.URL.Host, ErrHTTPRedirect)
	}
	out := req.Clone(req.Context())
	u := *req.URL
	u.Host = hex.EncodeToString([]byte(peer+"/"+service)) + httpHostSuffix
	u.Path, u.RawPath = "/"+rest, "/"+rawRest
	out.URL = &u
	if out.Host == "" || out.Host == req.URL.Host {
		out.Host = peer
	}
	resp, err := m.base.RoundTrip(out)
	if resp != nil {
		resp.Request = req // the mesh URL the caller asked for
	}
	return resp, err
}

// CloseIdleConnections closes the pooled circuits no request is using.
func (m *meshTransport) CloseIdleConnections() { m.base.CloseIdleConnections() }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func decodeHTTPHost(addr string) (peer, service string, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("mesh HTTP address %q: %w: %w", addr, err, ErrHTTPURL)
	}
	b, err := hex.DecodeString(strings.TrimSuffix(host, httpHostSuffix))
	if err != nil || !strings.HasSuffix(host, httpHostSuffix) {
		return "", "", fmt.Errorf("mesh HTTP address %q: %w", addr, ErrHTTPURL)
	}
	peer, service, _ = strings.Cut(string(b), "/")
	return peer, service, nil
}
