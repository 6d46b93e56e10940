package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestPingAndDialRefuseNamesNoNodeCanHave: a peer name that breaks the
// node's name rules (here 100 KB long) is answered 400 with a short
// error before anything is sent, not with the node's error repeating it.
func TestPingAndDialRefuseNamesNoNodeCanHave(t *testing.T) {
	c, _ := startServer(t, newFake())
	for _, peer := range []string{strings.Repeat("b", 100_000), "B", "b/c", ""} {
		var p Ping
		err := c.Get(context.Background(), PathPing, url.Values{"peer": {peer}}, &p)
		if !errors.Is(err, ErrBadRequest) || len(err.Error()) > 300 {
			t.Errorf("ping of the peer %.30q (%d bytes): %.400v; want a bad request of a short line", peer, len(peer), err)
		}
		_, err = c.Dial(context.Background(), peer, "echo")
		if !errors.Is(err, ErrBadRequest) || len(err.Error()) > 300 {
			t.Errorf("dial of the peer %.30q (%d bytes): %.400v; want a bad request of a short line", peer, len(peer), err)
		}
	}
}

// TestIdleAdminConnectionsAreClosed: a connection is not kept idle once
// its request is answered (a client asking for keep-alive included), so
// that clients that keep their connections do not fill MaxConns.
func TestIdleAdminConnectionsAreClosed(t *testing.T) {
	_, path := startServer(t, newFake())
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET "+PathStatus+" HTTP/1.1\r\nHost: circuitmesh\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("connection idle after its answer: read %v, want EOF (closed by the server)", err)
	}
}

// TestAdminConnectionsAreBounded: connections beyond the bound are closed
// as soon as they are accepted, and a place freed is taken again.
func TestAdminConnectionsAreBounded(t *testing.T) {
	c, path := startServer(t, newFake())
	// Well beyond the bound, made faster than the server's header
	// timeout (10 s) frees them.
	const most = 600
	var held []net.Conn
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for i := 0; i < most; i++ {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	time.Sleep(500 * time.Millisecond) // each accepted (and closed, if refused)
	refused := 0
	for _, h := range held {
		h.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := h.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("%d idle admin connections open at once, none refused", most)
	}
	t.Logf("%d of %d connections refused", refused, most)
	// Free places: requests are answered again.
	for _, h := range held[:2] {
		h.Close()
	}
	held = held[2:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st any
		err := c.Get(context.Background(), PathStatus, nil, &st)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after connections were closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAttackAdminAnswerIsBounded: whatever answers on the admin socket
// (a daemon gone wrong, or a process of this user holding the socket)
// sends a status whose node name runs to 48 MiB. The client stops
// reading at its bound and fails, instead of holding all of it in
// memory (an endless answer would have grown until the request's
// timeout).
func TestAttackAdminAnswerIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const size = 48 << 20
	wrote := make(chan int64, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.WriteString(w, `{"name":"`)
		total := int64(n)
		chunk := strings.Repeat("a", 64<<10)
		for total < size {
			n, err := io.WriteString(w, chunk)
			total += int64(n)
			if err != nil {
				break
			}
		}
		io.WriteString(w, `"}`)
		wrote <- total
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var st node.Status
	err = NewClient(path).Get(context.Background(), PathStatus, nil, &st)
	var n int64
	select {
	case n = <-wrote:
	case <-time.After(time.Minute):
		t.Fatal("the answer was still being written a minute later")
	}
	if err == nil || !strings.Contains(err.Error(), "more than 16777216 bytes") {
		t.Errorf("status of %d bytes: name of %d bytes, error %v; want the answer refused at 16 MiB", n, len(st.Name), err)
	}
	t.Logf("the listener wrote %d bytes before the client stopped reading", n)
	if n > 20<<20 {
		t.Errorf("the client read %d bytes of the answer, want at most 16 MiB and the socket's buffers", n)
	}
}

// TestConnectionRefusedAtTheBoundSaysWhy: the admin API holds MaxConns
// connections (here idle ones, until the header timeout), and the CLI
// asks for the status. The daemon closes the connection at once, and the
// CLI said "EOF" (or "connection reset by peer", or "broken pipe", as the
// request's size and the timing had it): nothing said the daemon runs,
// nor why it did not answer. Now the error says it (ErrBusy), naming the
// bound.
func TestConnectionRefusedAtTheBoundSaysWhy(t *testing.T) {
	c, path := startServer(t, newFake())
	var held []net.Conn
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for range MaxConns {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	// The server accepts in order: once one of these is closed at once,
	// the ones before hold every place.
	probe, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	probe.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := probe.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a connection beyond %d idle ones: read %v, want EOF (refused)", MaxConns, err)
	}
	probe.Close()
	for _, do := range []func() error{
		func() error { var st node.Status; return c.Get(context.Background(), PathStatus, nil, &st) },
		func() error { return c.Post(context.Background(), PathLinkCost, LinkCost{Peer: "b", Cost: 10}, nil) },
		func() error { _, err := c.Dial(context.Background(), "b", "echo"); return err },
	} {
		err := do()
		if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "256 connections") {
			t.Errorf("a request at the bound: %v; want %v naming the bound", err, ErrBusy)
		}
	}
}

// TestAttackUnreadAnswersHoldTheDaemonsMemory: a process of the daemon's
// user asks, on 64 connections, for the peers of a node that knows 4,096
// (an answer of about 1 MiB each) and never reads. Each handler waited on
// its write without end, holding the encoded answer: 347 MiB for 255
// connections, as long as they stayed open. Now an answer not taken
// within RequestTimeout is dropped with its connection, and the memory
// with it.
func TestAttackUnreadAnswersHoldTheDaemonsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the request timeout")
	}
	f := newFake()
	f.peers = nil
	for i := range 4096 {
		f.peers = append(f.peers, node.PeerInfo{Name: fmt.Sprintf("node-%04d.example", i), Reachable: true, NextHop: "b",
			Cost: 1000, Hops: 5, Seqno: 100, Alternates: []string{"c", "d", "e"}})
	}
	_, path := startServer(t, f)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	heap := func() float64 {
		runtime.GC()
		runtime.GC() // and what pools kept
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		return float64(int64(now.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
	}
	const clients = 64
	var held []net.Conn
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	start := time.Now()
	for range clients {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
		io.WriteString(conn, "GET "+PathPeers+" HTTP/1.1\r\nHost: circuitmesh\r\n\r\n")
	}
	// Each answer is being written once its first line arrives (its
	// whole answer encoded, and far more than the socket's buffer).
	for _, h := range held {
		h.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := bufio.NewReaderSize(h, 16).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("answer of the peers: %q, %v", line, err)
		}
	}
	t.Logf("%d clients not reading the peers: %d goroutines and %.1f MiB more heap", clients, runtime.NumGoroutine()-goroutines, heap())
	deadline := start.Add(2 * RequestTimeout)
	for runtime.NumGoroutine() > goroutines+2 {
		if time.Now().After(deadline) {
			t.Fatalf("%v after %d clients asked for the peers and never read: %d goroutines and %.1f MiB of heap still held",
				time.Since(start).Round(time.Second), clients, runtime.NumGoroutine()-goroutines, heap())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after %v: %d goroutines and %.1f MiB more heap", time.Since(start).Round(time.Second), runtime.NumGoroutine()-goroutines, heap())
}
