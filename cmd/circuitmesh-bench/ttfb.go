package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// webService is the mesh service behind which every node role exposes a
// tiny HTTP server on loopback TCP (for the TTFB measurement).
const webService = "web"

// webServer is a node role's tiny HTTP server, exposed as webService.
type webServer struct {
	addr string
	stop func()
}

func startWeb(n *node.Node) (*webServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	unexpose, err := n.Expose(webService, ln.Addr().String())
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &webServer{addr: ln.Addr().String(), stop: func() { unexpose(); srv.Close() }}, nil
}

// forwards are a node role's TCP forwards to other nodes' web services,
// made on first use.
type forwards struct {
	mu    sync.Mutex
	addrs map[string]string
	stops []func() error
}

func (f *forwards) to(n *node.Node, peer string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.addrs[peer]; ok {
		return a, nil
	}
	addr, stop, err := n.Forward("127.0.0.1:0", peer, webService)
	if err != nil {
		return "", err
	}
	if f.addrs == nil {
		f.addrs = map[string]string{}
	}
	f.addrs[peer] = addr.String()
	f.stops = append(f.stops, stop)
	return addr.String(), nil
}

func (f *forwards) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, stop := range f.stops {
		stop()
	}
}

// ttfbRounds measures count times, alternating, the time from connect to
// the status line of a GET: directly to direct and through the forward at
// fwd. One request first warms the forward (the end-to-end key).
func ttfbRounds(direct, fwd string, count int) (map[string][]int64, error) {
	if _, err := ttfbOnce(fwd); err != nil {
		return nil, fmt.Errorf("warm-up through the forward: %w", err)
	}
	out := map[string][]int64{}
	for i := range 2 * count {
		key, addr := "direct_tcp", direct
		if i%2 == 1 {
			key, addr = "forward_k1", fwd
		}
		d, err := ttfbOnce(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out[key] = append(out[key], d.Nanoseconds())
	}
	return out, nil
}

func ttfbOnce(addr string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || line[9:12] != "200" {
		return 0, fmt.Errorf("status line %q", line)
	}
	return time.Since(start), nil
}
