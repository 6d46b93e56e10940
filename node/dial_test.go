package node

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

func TestDialUnknownPeerIsTypedNoRouteAndFast(t *testing.T) {
	c := newCluster(t, true)
	// A dial that waited for a route would take the whole minute.
	c.tweak = func(cfg *Config) { cfg.RouteWait = time.Minute }
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	start := time.Now()
	_, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "nobody", "svc")
	if !errors.Is(err, circuit.ErrNoRoute) {
		t.Fatalf("dial unknown peer: got %v, want ErrNoRoute", err)
	}
	var re *circuit.RefusedError
	if !errors.As(err, &re) || re.Node != "a" {
		t.Fatalf("refusal should name node a as its producer: %#v", err)
	}
	if d := time.Since(start); d >= 30*time.Second {
		t.Fatalf("no-route took %v; it must not wait for a route to a name nobody announced", d)
	}
}

// A dial to a node routing knows but cannot reach right now (its route was
// just lost) waits for the route to come back rather than failing at once.
func TestDialWaitsForALostRouteToComeBack(t *testing.T) {
	c := newCluster(t, false)
	c.tweak = func(cfg *Config) { cfg.RouteWait = time.Minute }
	c.build("a-b", "b-c")
	c.waitRoute("a", "c", 2)
	a := c.nodes["a"]
	cutAndLose(t, c, "a", "b", "c")
	if !a.recentlyKnown("c") {
		t.Fatal("a forgot c at once; the lost route should stay known")
	}

	// The route does not come back: the dial waits until its deadline.
	const wait = 300 * time.Millisecond
	start := time.Now()
	_, err := a.Dial(ctxT(t, wait), "c", EchoService)
	if !errors.Is(err, circuit.ErrNoRoute) {
		t.Fatalf("dial while c is unreachable: %v, want no route", err)
	}
	if d := time.Since(start); d < wait {
		t.Fatalf("dial refused after %v, before its %v deadline: it did not wait for a route", d, wait)
	}

	// The route comes back while a dial waits: the dial succeeds.
	done := make(chan error, 1)
	go func() { done <- roundTrip(t, a, "c", EchoService, []byte("back")) }()
	c.link("b", "c")
	if err := <-done; err != nil {
		t.Fatalf("dial across the restored route: %v", err)
	}
}

func TestDirectDuplex(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	c.waitRoute("b", "a", 1)
	for _, n := range []string{"a", "b"} {
		serve(t, c.nodes[n], "echo2", echoHandler)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, p := range [][2]string{{"a", "b"}, {"b", "a"}} {
		wg.Add(1)
		go func(from, to string) {
			defer wg.Done()
			msg := bytes.Repeat([]byte(from+"->"+to+" "), 10000)
			if err := roundTrip(t, c.nodes[from], to, "echo2", msg); err != nil {
				errs <- fmt.Errorf("%s->%s: %w", from, to, err)
			}
		}(p[0], p[1])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestThroughRouterBothDirections(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	c.waitRoute("b", "a", 2)
	serve(t, c.nodes["a"], "svc", echoHandler)
	serve(t, c.nodes["b"], "svc", echoHandler)
	if err := roundTrip(t, c.nodes["a"], "b", "svc", []byte("hello b")); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, c.nodes["b"], "a", "svc", []byte("hello a")); err != nil {
		t.Fatal(err)
	}
	// The caller sees the path and the destination's address.
	conn := dialPath(t, c.nodes["a"], "b", "[a r b]")
	if got := conn.RemoteAddr().String(); got != "b/echo" {
		t.Fatalf("caller's RemoteAddr = %s, want b/echo", got)
	}
}

func TestLeafIsNeverTransit(t *testing.T) {
	c := newCluster(t, true)
	c.leafs["l"] = true
	// a–l–b through the leaf only: b must stay unreachable from a.
	c.build("a-l", "l-b")
	c.waitRoute("a", "l", 1)
	c.waitRoute("b", "l", 1)
	time.Sleep(300 * time.Millisecond)
	if p, ok := c.nodes["a"].Peer("b"); ok && p.Reachable {
		t.Fatalf("a reaches b through leaf l: %+v", p)
	}
	_, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", EchoService)
	if !errors.Is(err, circuit.ErrNoRoute) {
		t.Fatalf("dial through a leaf: got %v, want no route", err)
	}
	// Add a router path: traffic takes it, never the leaf.
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	dialPath(t, c.nodes["a"], "b", "[a r b]")
	// The leaf itself reaches everyone and is reachable.
	if err := roundTrip(t, c.nodes["l"], "r", EchoService, []byte("x")); err != nil {
		t.Fatalf("leaf to r: %v", err)
	}
}

func TestConcurrentCircuitsThroughRelay(t *testing.T) {
	c := newCluster(t, true)
	// Each circuit's reader lags while its writer sends: on a CPU-starved
	// machine 64 of them can make no progress for seconds, and the
	// stalled-reader reclaim (Limits.ReaderStall, tested in
	// stall_test.go) would reset them. This test is about concurrency
	// through a relay, so a reader counts as stalled only after a minute.
	c.tweak = func(cfg *Config) { cfg.Limits.ReaderStall = patience }
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	serve(t, c.nodes["b"], "svc", echoHandler)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			msg := make([]byte, 32<<10)
			rand.Read(msg)
			if err := roundTrip(t, c.nodes["a"], "b", "svc", msg); err != nil {
				errs <- fmt.Errorf("circuit %d: %w", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLineBulkHalfClose sends a large payload each way across a 5-node
// line (4 links, 3 relays) and verifies both by hash, half-closing each
// direction independently.
func TestLineBulkHalfClose(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 8 << 20
	}
	c := newCluster(t, true)
	c.build("n1-n2", "n2-n3", "n3-n4", "n4-n5")
	c.waitRoute("n1", "n5", 4)
	c.waitRoute("n5", "n1", 4)
	type result struct {
		sum [32]byte
		err error
	}
	srvGot := make(chan result, 1)
	srvSent := make(chan [32]byte, 1)
	serve(t, c.nodes["n5"], "bulk", func(conn io.ReadWriteCloser) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // send our own payload, then half-close
			defer wg.Done()
			h := sha256.New()
			_, err := io.CopyN(io.MultiWriter(conn, h), rand.Reader, int64(size))
			if err == nil {
				err = conn.(Conn).CloseWrite()
			}
			var s [32]byte
			copy(s[:], h.Sum(nil))
			srvSent <- s
		}()
		h := sha256.New()
		_, err := io.Copy(h, conn)
		var s [32]byte
		copy(s[:], h.Sum(nil))
		srvGot <- result{s, err}
		wg.Wait()
	})
	conn, err := c.nodes["n1"].Dial(ctxT(t, patience), "n5", "bulk")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := make(chan result, 1)
	go func() {
		h := sha256.New()
		_, err := io.CopyN(io.MultiWriter(conn, h), rand.Reader, int64(size))
		if err == nil {
			err = conn.(Conn).CloseWrite()
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		sent <- result{s, err}
	}()
	h := sha256.New()
	n, err := io.Copy(h, conn)
	if err != nil || n != int64(size) {
		t.Fatalf("client read %d bytes, err %v; want %d", n, err, size)
	}
	cs := <-sent
	if cs.err != nil {
		t.Fatalf("client send: %v", cs.err)
	}
	sg := <-srvGot
	if sg.err != nil || sg.sum != cs.sum {
		t.Fatalf("server received a different payload (err %v)", sg.err)
	}
	var got [32]byte
	copy(got[:], h.Sum(nil))
	if got != <-srvSent {
		t.Fatal("client received a different payload")
	}
}

// dialPath dials to's echo service recording the path, checks the path
// and returns the circuit (closed at the end of the test).
func dialPath(t *testing.T, from *Node, to, want string) Conn {
	t.Helper()
	conn, err := from.DialWith(ctxT(t, 5*time.Second), to, EchoService, DialOptions{RecordPath: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if got := fmt.Sprint(conn.Path()); got != want {
		t.Fatalf("path = %s, want %s", got, want)
	}
	return conn
}
