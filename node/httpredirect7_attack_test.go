package node

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackHTTPRedirectDialsAsTheClient: a destination answering an
// HTTPClient request chooses where a redirect goes, and the client opens
// the circuit there as its own node, the source every destination's policy
// sees. m, a member with a valid certificate that c's policy denies (only
// a may open c's "vault"), serves "web" and redirects a's requests to
// http://c/vault/wipe. Before, a's GET of http://m/web/ followed to c's
// vault as a, which c allowed, and a's application read c's answer as m's:
// m reached through a a service the policy denies it. Now HTTPClient
// follows a redirect only to the peer the request went to: a's client
// gets m's 302 back, Location and all, and c's vault sees no request; a
// redirect to another service of m is still followed. An http.Client an
// application builds on HTTPTransport with Go's default redirect policy
// followed to c's vault the same way; now its GET fails with
// ErrHTTPRedirect and c still sees nothing.
func TestAttackHTTPRedirectDialsAsTheClient(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-m", "a-c")
	c.waitRoute("m", "c", 2)
	a, m, cn := c.node("a"), c.node("m"), c.node("c")
	cn.SetPolicy(mustPolicy(t, "allow dial from=a service=vault\n"))

	var vaultHits atomic.Int32
	serveHTTP(t, cn, "vault", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vaultHits.Add(1)
		io.WriteString(w, "wiped "+r.URL.Path)
	}))
	serveHTTP(t, m, "web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "http://m/new/here", http.StatusFound)
			return
		}
		http.Redirect(w, r, "http://c/vault/wipe", http.StatusFound)
	}))
	serveHTTP(t, m, "new", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "new "+r.URL.Path)
	}))

	// m on its own is refused by c's policy (at once, or on its first
	// read when c learns m's certificate in the handshake).
	conn, err := m.Dial(ctxT(t, 10*time.Second), "c", "vault")
	if err == nil {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if !errors.Is(err, circuit.ErrRefusedByPolicy) {
		t.Fatalf("m's own circuit to c/vault: %v, want refused by policy", err)
	}

	get := func(cl *http.Client, url string) (*http.Response, string, error) {
		resp, err := cl.Get(url)
		if err != nil {
			return nil, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body), nil
	}
	followsWithinM := func(cl *http.Client, who string) {
		t.Helper()
		resp, body, err := get(cl, "http://m/web/moved")
		if err != nil {
			t.Fatalf("GET of m/web/moved by %s: %v", who, err)
		}
		if resp.StatusCode != http.StatusOK || body != "new /here" {
			t.Fatalf("redirect to another service of m, %s: %d %q, want it followed", who, resp.StatusCode, body)
		}
	}

	cl := a.HTTPClient()
	resp, body, err := get(cl, "http://m/web/")
	if err != nil {
		t.Fatalf("a's GET of m/web: %v", err)
	}
	if n := vaultHits.Load(); n != 0 || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://c/vault/wipe" {
		t.Fatalf("a's GET of m/web: %d %q, Location %q; c's vault served %d requests; want m's 302 back and none at c",
			resp.StatusCode, body, resp.Header.Get("Location"), n)
	}
	followsWithinM(cl, "a's HTTPClient")

	own := &http.Client{Transport: a.HTTPTransport(), Timeout: time.Minute}
	_, body, err = get(own, "http://m/web/")
	if n := vaultHits.Load(); !errors.Is(err, ErrHTTPRedirect) || n != 0 {
		t.Fatalf("GET of m/web by a client on a's transport, default redirects: %v (body %q); c's vault served %d requests; want ErrHTTPRedirect and none at c",
			err, body, n)
	}
	followsWithinM(own, "a client on a's transport")
}
