package node

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/memlink"
)

// memTransport returns a Config.NewTransport making name's transport on
// mesh.
func memTransport(mesh *memlink.Network, name string) func(links.Handler, links.Role) (links.Transport, error) {
	return func(h links.Handler, role links.Role) (links.Transport, error) {
		return mesh.Transport(memlink.TransportConfig{Name: name, Mesh: "test", Role: role, Handler: h})
	}
}

// stallingResolver is a DNS resolver whose server never answers: each
// lookup waits for its context to end. entered is closed at the first
// lookup.
func stallingResolver() (r *net.Resolver, entered <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		once.Do(func() { close(ch) })
		<-ctx.Done()
		return nil, ctx.Err()
	}}, ch
}

// closeWhileStarting starts n, closes it once Start reached the point
// reached says, and checks that Start failed with ErrClosed and left the
// node closed.
func closeWhileStarting(t *testing.T, n *Node, reached <-chan struct{}) {
	t.Helper()
	startErr := make(chan error, 1)
	go func() { startErr <- n.Start(context.Background()) }()
	<-reached
	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-startErr; !errors.Is(err, ErrClosed) {
		t.Errorf("Start stopped by Close returned %v, want an error matching ErrClosed", err)
	}
	if st := n.Status().State; st != "closed" {
		t.Errorf("state after Close and Start returned: %q, want closed", st)
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
}

// resolvingNode is a node whose Start looks up its static link's name on
// a DNS server that never answers; resolving is closed at the lookup.
func resolvingNode(t *testing.T) (n *Node, resolving <-chan struct{}) {
	r, resolving := stallingResolver()
	n, err := New(Config{Name: "a", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t),
		NewTransport: memTransport(memlink.NewNetwork(memlink.Config{}), "a"),
		StaticLinks:  []string{"seed.example.invalid:4242"},
		Discovery:    DiscoveryConfig{BindAddr: "127.0.0.1:0", Resolver: r}})
	if err != nil {
		t.Fatal(err)
	}
	return n, resolving
}

// TestCloseWhileStartMakesItsTransport: Close called while Start is still
// creating the transport. Close took the node, marked running at the
// start of Start, as fully started and called Close on the transport not
// made yet: a nil pointer panic. Now Close stops the start and waits for
// it; Start undoes what it started and fails with ErrClosed.
func TestCloseWhileStartMakesItsTransport(t *testing.T) {
	defer goleak.VerifyNone(t, append(leakIgnores, goleak.IgnoreCurrent())...)
	mesh := memlink.NewNetwork(memlink.Config{})
	making, release := make(chan struct{}), make(chan struct{})
	newTransport := memTransport(mesh, "a")
	cfg := Config{Name: "a", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t),
		NewTransport: func(h links.Handler, role links.Role) (links.Transport, error) {
			close(making)
			<-release // still making it when Close comes
			return newTransport(h, role)
		}}
	cfg.hooks = &hooks{startStopped: func() { close(release) }}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	closeWhileStarting(t, n, making)
}

// TestCloseWhileStartResolvesStopsTheStart: Close called while Start
// resolves the names of static links (a DNS server that does not answer).
// Close went ahead as if the node were up, the lookup ended with the
// node's context, and Start then started gossip on the closed node and
// returned nil, leaving goroutines Close never waited for. Now Start
// stops at once, undoes what it started and fails with ErrClosed.
func TestCloseWhileStartResolvesStopsTheStart(t *testing.T) {
	defer goleak.VerifyNone(t, append(leakIgnores, goleak.IgnoreCurrent())...)
	n, resolving := resolvingNode(t)
	closeWhileStarting(t, n, resolving)
}

// TestCloseRacingStartLeavesNothingRunning closes nodes at whatever point
// their Start reached (from before it began to after it returned). It
// used to panic, or to leave a node whose Start returned nil draining
// with goroutines Close never waited for. Whatever the order, once both
// returned the node is closed, a failed Start says ErrClosed, and no
// goroutine is left.
func TestCloseRacingStartLeavesNothingRunning(t *testing.T) {
	defer goleak.VerifyNone(t, append(leakIgnores, goleak.IgnoreCurrent())...)
	mesh := memlink.NewNetwork(memlink.Config{})
	for i := range 40 {
		n, err := New(Config{Name: "a", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t),
			NewTransport: memTransport(mesh, "a")})
		if err != nil {
			t.Fatal(err)
		}
		startErr := make(chan error, 1)
		go func() { startErr <- n.Start(context.Background()) }()
		for range i % 8 {
			runtime.Gosched()
		}
		if err := n.Close(); err != nil {
			t.Errorf("round %d: Close: %v", i, err)
		}
		if err := <-startErr; err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("round %d: Start: %v, want nil or an error matching ErrClosed", i, err)
		}
		if st := n.Status().State; st != "closed" {
			t.Errorf("round %d: state %q after Close, want closed", i, st)
		}
	}
}

// TestCallsDuringStartSeeItWhole: the methods that read the transport or
// the discovery Start makes (Addr, Status, Members, Coordinates,
// GossipKeys, the metrics) read them without the lock Start did not take
// either: a data race with a Start under way (go test -race reports it).
// Start now sets them under the node's lock and those methods read them
// under it; meanwhile the node says it is starting.
func TestCallsDuringStartSeeItWhole(t *testing.T) {
	defer goleak.VerifyNone(t, append(leakIgnores, goleak.IgnoreCurrent())...)
	n, err := New(Config{Name: "a", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t),
		NewTransport: memTransport(memlink.NewNetwork(memlink.Config{}), "a"),
		Discovery:    DiscoveryConfig{BindAddr: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	started := make(chan struct{})
	var wg sync.WaitGroup
	// Each reader on its own: a call that takes the node's lock would
	// order the others after Start's writes.
	for _, read := range []func(){
		func() {
			switch st := n.Status().State; st {
			case "new", "starting", "running":
			default:
				t.Errorf("state %q while starting", st)
			}
		},
		func() { n.Addr() },
		func() { n.Members() },
		func() { n.Coordinates() },
		func() { n.GossipKeys() },
		func() {
			n.MetricsHandler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-started:
					return
				default:
					read()
				}
			}
		}()
	}
	err = n.Start(context.Background())
	close(started)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st := n.Status().State; st != "running" {
		t.Errorf("state after Start: %q, want running", st)
	}
}

// TestStartAgainFailsWithErrAlreadyStarted: Start called again while the
// first Start runs, or after it succeeded, failed with a bare "already
// started" that no sentinel matched. Now it fails with an error matching
// ErrAlreadyStarted, and the node goes on as the first Start leaves it.
func TestStartAgainFailsWithErrAlreadyStarted(t *testing.T) {
	n, resolving := resolvingNode(t)
	defer n.Close()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- n.Start(ctx) }()
	<-resolving
	if err := n.Start(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("Start while the first Start runs: %v, want an error matching ErrAlreadyStarted", err)
	}
	cancel() // the lookup never ends: the first Start stops
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first Start, its ctx cancelled: %v", err)
	}

	n, err := New(Config{Name: "b", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("Start after Start succeeded: %v, want an error matching ErrAlreadyStarted", err)
	}
	if st := n.Status().State; st != "running" {
		t.Errorf("state after a second Start: %q, want running", st)
	}
}
