package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/links/memlink"
)

// cluster is a set of real nodes for a test, on loopback QUIC or on
// in-memory links.
type cluster struct {
	t      testing.TB
	ca     *identity.CA
	memNet *memlink.Network // nil for QUIC
	nodes  map[string]*Node
	tp     trace.TracerProvider
	leafs  map[string]bool
	tweak  func(*Config)

	evMu   sync.Mutex
	events map[string][]Event // each node's latest events, for failures
	evWG   sync.WaitGroup     // event collectors; they end when nodes close
	logs   map[string]*lineRing
	tw     *testWriter // the nodes' log when the test is verbose
}

// keptEvents is how many of each node's latest events (and log lines) a
// failing test prints.
const keptEvents = 30

// patience bounds the waits for an event the tests expect (a route, a
// link, a dial): generous, as a CPU-starved machine (the race detector,
// other test binaries beside this one) takes many times longer than an
// idle one, and a wait ends as soon as its condition holds.
const patience = time.Minute

// waitGroup waits for wg, failing the test if it is not done within
// patience (a hung goroutine fails the test instead of its timeout).
func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatalf("%s: not done after %v", what, patience)
	}
}

func newCluster(t testing.TB, quic bool) *cluster {
	t.Helper()
	c := &cluster{t: t, nodes: map[string]*Node{}, leafs: map[string]bool{}, events: map[string][]Event{},
		logs: map[string]*lineRing{}}
	if quic {
		ca, err := identity.NewCA("test", 0)
		if err != nil {
			t.Fatal(err)
		}
		c.ca = ca
	} else {
		c.memNet = memlink.NewNetwork(memlink.Config{})
	}
	if testing.Verbose() {
		// Registered before closeAll, so it runs after it: the nodes'
		// lines while they close still reach the test's output.
		c.tw = newTestWriter(t)
	}
	t.Cleanup(c.closeAll)
	// Registered after closeAll, so it runs first: the state at the failure.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster state at the failure:\n%s", c.state())
		}
	})
	return c
}

// collect records n's events until it closes.
func (c *cluster) collect(n *Node) {
	ch, _, err := n.Subscribe(256) // closed by n.Close
	if err != nil {
		c.t.Fatal(err)
	}
	c.evWG.Add(1)
	go func() {
		defer c.evWG.Done()
		for ev := range ch {
			c.evMu.Lock()
			evs := append(c.events[n.Name()], ev)
			if len(evs) > keptEvents {
				evs = evs[len(evs)-keptEvents:]
			}
			c.events[n.Name()] = evs
			c.evMu.Unlock()
		}
	}()
}

// state is every node's latest events, links and routes as text.
func (c *cluster) state() string {
	names := make([]string, 0, len(c.nodes))
	for name := range c.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		c.evMu.Lock()
		evs := slices.Clone(c.events[name])
		c.evMu.Unlock()
		fmt.Fprintf(&b, "events of %s (latest %d):\n", name, len(evs))
		for _, ev := range evs {
			fmt.Fprintf(&b, "  %s\n", ev)
		}
		if r := c.logs[name]; r != nil {
			lines := r.lines()
			fmt.Fprintf(&b, "log of %s at INFO and above (latest %d):\n", name, len(lines))
			for _, l := range lines {
				fmt.Fprintf(&b, "  %s\n", l)
			}
		}
		c.nodes[name].WriteState(&b)
		fmt.Fprintf(&b, "  routing %+v\n", c.nodes[name].RoutingStats())
	}
	return b.String()
}

func (c *cluster) closeAll() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func(n *Node) {
			defer wg.Done()
			n.Close()
		}(n)
	}
	wg.Wait()
	c.evWG.Wait()
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return newTestWriter(t).logger()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testWriter sends log lines to t.Log until t's cleanups run, and to
// stderr, marked with the test's name, after: a goroutine that outlives
// its node's Close (memberlist's probe in flight ends on its own
// timeout) may still log, and t.Log after the test completed is a data
// race the race detector reports, failing the package.
type testWriter struct {
	t     testing.TB
	after io.Writer // after t's cleanups ran; os.Stderr if nil
	mu    sync.Mutex
	done  bool // t's cleanups ran
}

func newTestWriter(t testing.TB) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return w
}

func (w *testWriter) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lineRing keeps the latest keptEvents lines written to it.
type lineRing struct {
	mu   sync.Mutex
	last []string
}

func (r *lineRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		r.last = append(r.last, l)
	}
	if len(r.last) > keptEvents {
		r.last = slices.Clone(r.last[len(r.last)-keptEvents:])
	}
	return len(p), nil
}

func (r *lineRing) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.last)
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		after := w.after
		if after == nil {
			after = os.Stderr
		}
		fmt.Fprintf(after, "%s (after it ended): %s\n", w.t.Name(), strings.TrimSpace(string(p)))
		return len(p), nil
	}
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// logger is name's logger: every line to the test's output (c.tw) when
// the test is verbose, else its latest lines at INFO and above, printed
// if the test fails.
func (c *cluster) logger(name string) *slog.Logger {
	if c.tw != nil {
		return c.tw.logger()
	}
	r := &lineRing{}
	c.logs[name] = r
	return slog.New(slog.NewTextHandler(r, nil))
}

// add starts a node named name.
func (c *cluster) add(name string) *Node {
	c.t.Helper()
	cfg := Config{
		Name:           name,
		Mesh:           "test",
		Leaf:           c.leafs[name],
		GracePeriod:    200 * time.Millisecond,
		Logger:         c.logger(name),
		TracerProvider: c.tp,
	}
	if c.memNet != nil {
		cfg.Insecure = true
		cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
			return c.memNet.Transport(memlink.TransportConfig{Name: name, Mesh: "test", Role: role, Handler: h})
		}
	} else {
		id, err := c.ca.Issue(name, 0)
		if err != nil {
			c.t.Fatal(err)
		}
		cfg.Identity = id
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatalf("new node %s: %v", name, err)
	}
	if err := n.Start(context.Background()); err != nil {
		c.t.Fatalf("start node %s: %v", name, err)
	}
	c.nodes[name] = n
	c.collect(n)
	return n
}

// link links a to b (creating the nodes as needed).
func (c *cluster) link(a, b string) {
	c.t.Helper()
	na, nb := c.node(a), c.node(b)
	addr := b
	if c.memNet == nil {
		addr = nb.Addr().String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := na.Link(ctx, addr); err != nil {
		c.t.Fatalf("link %s-%s: %v", a, b, err)
	}
}

func (c *cluster) node(name string) *Node {
	if n := c.nodes[name]; n != nil {
		return n
	}
	return c.add(name)
}

// build links every "a-b" edge in edges.
func (c *cluster) build(edges ...string) {
	c.t.Helper()
	for _, e := range edges {
		a, b, ok := strings.Cut(e, "-")
		if !ok {
			c.t.Fatalf("bad edge %q", e)
		}
		c.link(a, b)
	}
}

// captureLog sends node name's log, as text at every level, to the buffer
// it returns, after whatever c.tweak set so far does.
func (c *cluster) captureLog(name string) *syncBuf {
	buf := new(syncBuf)
	prev := c.tweak
	c.tweak = func(cfg *Config) {
		if prev != nil {
			prev(cfg)
		}
		if cfg.Name == name {
			cfg.Logger = slog.New(slog.NewTextHandler(buf, nil))
		}
	}
	return buf
}

// mustLink is from's link to its neighbour to; the test fails without one.
func (c *cluster) mustLink(from, to string) links.Link {
	c.t.Helper()
	l := c.nodes[from].link(to)
	if l == nil {
		c.t.Fatalf("no link %s-%s", from, to)
	}
	return l
}

// waitRoute waits until from reaches to through hops relays-plus-one hops
// (hops 0 means any).
func (c *cluster) waitRoute(from, to string, hops int) PeerInfo {
	c.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		p, ok := c.nodes[from].Peer(to)
		if ok && p.Reachable && (hops == 0 || p.Hops == hops) {
			return p
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s never reached %s in %d hops: %+v (known %v)", from, to, hops, p, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNextHop waits until from routes to via next hop via.
func (c *cluster) waitNextHop(from, to, via string) {
	c.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		p, _ := c.nodes[from].Peer(to)
		if p.Reachable && p.NextHop == via {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s never routed to %s via %s: %+v", from, to, via, p)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitConverged waits until every node reaches every other node.
func (c *cluster) waitConverged() {
	c.t.Helper()
	for a := range c.nodes {
		for b := range c.nodes {
			if a != b {
				c.waitRoute(a, b, 0)
			}
		}
	}
}

// serve publishes service on node, answering each circuit with handle.
func serve(t testing.TB, n *Node, service string, handle func(c io.ReadWriteCloser)) {
	t.Helper()
	lis, err := n.Listen(service)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []io.Closer
	closed := false
	t.Cleanup(func() {
		lis.Close()
		// A handler blocked on a circuit (a Write waiting for window) ends
		// only when its circuit closes: close them all, or a failing test
		// would hang here instead of reporting. Accept may still return
		// a circuit that raced in before the listener closed: it is
		// closed at once (its handler, left running, once hung a passing
		// test here for 30 minutes).
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				continue
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
}

// echoHandler copies back what it reads, then half-closes.
func echoHandler(c io.ReadWriteCloser) {
	io.Copy(c, c)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip sends msg over a fresh circuit to an echo handler and checks
// the reply.
func roundTrip(t testing.TB, from *Node, to, service string, msg []byte) error {
	c, err := from.Dial(ctxT(t, patience), to, service)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	c.(Conn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if string(got) != string(msg) {
		return errors.New("echo mismatch")
	}
	return nil
}
