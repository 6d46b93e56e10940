package node

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkForwardTTFB measures the time to the first byte of a tiny HTTP
// response: from connect to the status line, directly to the server and
// through a Forward over one relay (a–r–b on loopback QUIC, b exposing the
// server), the way curl would use a forwarded port. Compare the ns/op of
// the two; go test -bench ForwardTTFB -benchtime 200x ./node/
func BenchmarkForwardTTFB(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})}
	go srv.Serve(ln)
	defer srv.Close()

	c := newCluster(b, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	stop, err := c.nodes["b"].Expose("web", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	fwd, stopFwd, err := c.nodes["a"].Forward("127.0.0.1:0", "b", "web")
	if err != nil {
		b.Fatal(err)
	}
	defer stopFwd()
	// One request first, so the end-to-end key is cached as in steady use.
	if err := ttfb(fwd.String()); err != nil {
		b.Fatal(err)
	}
	for _, target := range []struct{ name, addr string }{
		{"direct", ln.Addr().String()},
		{"forward-1-relay", fwd.String()},
	} {
		b.Run(target.name, func(b *testing.B) {
			for range b.N {
				if err := ttfb(target.addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ttfb connects to addr, sends a GET and reads the status line.
func ttfb(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || line[9:12] != "200" {
		return fmt.Errorf("status line %q", line)
	}
	return nil
}
