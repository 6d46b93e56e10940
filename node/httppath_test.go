package node

import (
	"io"
	"net/http"
	"testing"
)

// TestHTTPClientKeepsThePathEncoding: the path a request names after its
// service reaches the peer's server with the encoding the caller gave it,
// and a service whose name holds a "/" is reached by its escaped name.
// The transport rebuilt the path from its decoded form: a %2F in it
// became a "/", so "http://b/web/a%2Fb" asked the server for /a/b, and
// "http://b/we%2Fb/x" went to service "we".
func TestHTTPClientKeepsThePathEncoding(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	b := c.node("b")
	uri := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RequestURI) })
	serveHTTP(t, b, "web", uri)
	serveHTTP(t, b, "we/b", uri)
	cl := c.node("a").HTTPClient()
	for url, want := range map[string]string{
		"http://b/web/a%2Fb/c?q=1": "/a%2Fb/c?q=1",
		"http://b/web/x%20y/z":     "/x%20y/z",
		"http://b/web/p%3Fq?r=%2F": "/p%3Fq?r=%2F",
		"http://b/we%2Fb/a%2Fb":    "/a%2Fb",
	} {
		resp, err := cl.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(got) != want {
			t.Errorf("GET %s: the server got %d %q (%v), want request URI %q", url, resp.StatusCode, got, err, want)
		}
	}
}
