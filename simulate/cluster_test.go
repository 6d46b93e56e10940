package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

func newTestCluster(t *testing.T, names ...string) *Cluster {
	t.Helper()
	logs := &logTail{max: 400}
	c, err := NewCluster(Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	// Registered after Close, so it runs first: the state at the failure.
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			if err := c.WriteState(&b, failureEvents); err != nil {
				t.Logf("cluster state: %v", err)
			}
			t.Logf("cluster state at the failure:\n%s\nlatest logs of the nodes:\n%s", b.String(), logs)
		}
	})
	if err := c.AddNodes(ctxT(t, patience), names...); err != nil {
		t.Fatal(err)
	}
	return c
}

// logTail keeps the latest max lines written to it.
type logTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, strings.TrimRight(string(p), "\n"))
	if len(l.lines) > l.max {
		l.lines = l.lines[len(l.lines)-l.max:]
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// patience bounds the waits of the cluster tests (a start, a link, a
// convergence, a transfer of 1 MiB across two hops): they only bound a
// hang, and each ends as soon as its condition holds. On a CPU-starved
// machine (4 % of a core with the race detector) the 1 MiB transfer alone
// took more than 10 s; a wait bounded by that failed a test whose cluster
// was healthy.
const patience = 2 * time.Minute

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClusterKillRestartCutHeal(t *testing.T) {
	c := newTestCluster(t, "a", "b", "c")
	for _, e := range [][2]string{{"a", "b"}, {"b", "c"}} {
		if err := c.Link(ctxT(t, patience), e[0], e[1], LinkParams{Latency: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitConverged(ctxT(t, patience)); err != nil {
		t.Fatal(err)
	}
	if p, ok, _ := c.Route("a", "c"); !ok || p.Hops != 2 || p.NextHop != "b" {
		t.Fatalf("route a→c = %+v (reachable %v), want 2 hops via b", p, ok)
	}
	r, err := c.Transfer(ctxT(t, patience), "a", "c", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r.Path); got != 3 || r.Throughput() <= 0 {
		t.Fatalf("transfer %+v: want a 3-node path and a throughput", r)
	}

	if err := c.Cut("b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctxT(t, patience), func() error {
		if _, ok, _ := c.Route("a", "c"); ok {
			return errors.New("still reachable")
		}
		return nil
	}); err != nil {
		t.Fatalf("a reaches c across a cut: %v", err)
	}
	if err := c.Heal(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctxT(t, patience)); err != nil {
		t.Fatal(err)
	}

	if err := c.Kill("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Peers("b"); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("peers of a killed node: %v, want ErrNodeDown", err)
	}
	if _, err := c.WaitConverged(ctxT(t, patience)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Route("a", "c"); ok {
		t.Fatal("a reaches c through a dead relay")
	}
	if err := c.Restart(ctxT(t, patience), "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctxT(t, patience)); err != nil {
		t.Fatal(err)
	}
	evs, err := c.Events("a")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind+" "+e.Peer]++
	}
	if kinds["peer-down c"] == 0 || kinds["link-down b"] == 0 || kinds["link-up b"] < 2 {
		t.Fatalf("events of a: %v", kinds)
	}
}

// Latency set on a QUIC link shows in the measured round-trip time.
func TestQUICLatencyIsMeasured(t *testing.T) {
	c := newTestCluster(t, "a", "b")
	if err := c.Link(ctxT(t, patience), "a", "b", LinkParams{Latency: 15 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	rtt := func() time.Duration {
		ls, err := c.Links("a")
		if err != nil || len(ls) != 1 {
			t.Fatalf("links of a: %v %v", ls, err)
		}
		return ls[0].RTT
	}
	// Latency only adds to the RTT; on a loaded machine scheduling delays
	// add too, and the smoothed RTT comes down as probes measure it.
	if err := poll(ctxT(t, patience), func() error {
		got := rtt()
		if got < 30*time.Millisecond {
			t.Fatalf("RTT %v on a link with 15ms each way, below 30ms", got)
		}
		if got > 200*time.Millisecond {
			return fmt.Errorf("RTT %v on a link with 15ms each way, want about 30ms", got)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLink("a", "b", LinkParams{Latency: 60 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctxT(t, patience), func() error {
		if got := rtt(); got < 100*time.Millisecond {
			return fmt.Errorf("RTT %v", got)
		}
		return nil
	}); err != nil {
		t.Fatalf("after raising latency to 60ms each way: %v", err)
	}
	if err := c.SetLink("a", "c", LinkParams{}); !errors.Is(err, ErrNoEdge) {
		t.Fatalf("SetLink of a missing link: %v, want ErrNoEdge", err)
	}
	if err := c.AddNodes(ctxT(t, time.Second), "a"); err == nil {
		t.Fatal("added a node twice")
	}
}

// An ordered cluster outside a testing/synctest bubble would panic in the
// network's own goroutine, where nothing can recover it: NewCluster
// refuses it instead.
func TestOrderedClusterRefusedOutsideBubble(t *testing.T) {
	c, err := NewCluster(Config{Backend: BackendMem, Ordered: true})
	if err == nil {
		c.Close()
		t.Fatal("NewCluster accepted Ordered outside a bubble")
	}
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("NewCluster: %v, want ErrUnsupported", err)
	}
}

// TestNodesHoldARouteToEveryNode: a node of the cluster can hold a route
// to every node of the largest scenario (the node's own default bound,
// 4096 destinations, kept 5000-node scenarios from ever converging), and
// Config.NodeConfig still decides.
func TestNodesHoldARouteToEveryNode(t *testing.T) {
	c := newTestCluster(t, "a")
	if got := c.Node("a").Status().RoutesLimit; got < MaxNodes {
		t.Errorf("a node of the cluster holds at most %d routes, want at least %d (MaxNodes)", got, MaxNodes)
	}
	own, err := NewCluster(Config{Backend: BackendMem, NodeConfig: func(cfg *node.Config) { cfg.Limits.MaxRoutes = 100 }})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if err := own.AddNodes(ctxT(t, patience), "b"); err != nil {
		t.Fatal(err)
	}
	if got := own.Node("b").Status().RoutesLimit; got != 100 {
		t.Errorf("NodeConfig set 100 routes, the node holds %d", got)
	}
}

// Unlink removes the link from its dialling node too: the node no longer
// keeps it (it would redial it for ever, behind a blocked network), the
// other end hears that it went down, and Link restores it.
func TestUnlinkStopsTheDialler(t *testing.T) {
	for _, be := range []Backend{BackendMem, BackendQUIC} {
		t.Run(string(be), func(t *testing.T) {
			c, err := NewCluster(Config{Backend: be})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.AddNodes(ctxT(t, patience), "a", "b"); err != nil {
				t.Fatal(err)
			}
			if err := c.Link(ctxT(t, patience), "a", "b", LinkParams{Latency: time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WaitConverged(ctxT(t, patience)); err != nil {
				t.Fatal(err)
			}
			if err := c.Unlink("b", "a"); err != nil {
				t.Fatal(err)
			}
			c.mu.Lock()
			addr := c.be.addr("b")
			c.mu.Unlock()
			if err := c.Node("a").Unlink(addr); !errors.Is(err, node.ErrNotLinked) {
				t.Fatalf("a still keeps its link to b after Unlink: its own Unlink returned %v, want %v", err, node.ErrNotLinked)
			}
			if err := poll(ctxT(t, patience), func() error {
				if _, ok, _ := c.Route("b", "a"); ok {
					return errors.New("b still reaches a")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// b was told, rather than finding out by its probes.
			events, err := c.Events("b")
			if err != nil {
				t.Fatal(err)
			}
			told := false
			for _, ev := range events {
				told = told || ev.Kind == "link-down" && ev.Peer == "a" && strings.Contains(ev.Err, "unlinked by a")
			}
			if !told {
				t.Fatalf("b's events %+v: want a link-down from a saying it was unlinked", events)
			}
			if err := c.Link(ctxT(t, patience), "a", "b", LinkParams{Latency: time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.WaitConverged(ctxT(t, patience)); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := c.Route("b", "a"); !ok {
				t.Fatal("b does not reach a after Link")
			}
		})
	}
}

// TestBadArgumentsAreTyped: AddNodes given a name twice, a node's name
// again or a name that is not valid fails with ErrDuplicateNode or
// identity.ErrInvalidName before starting any of its nodes, and Link and
// SetLink with a negative latency, a loss outside 0..1 or a node's link
// to itself fail with ErrInvalidArgument. Before, these errors wrapped
// no sentinel (only their text told them apart) and AddNodes started the
// nodes before the bad name, x and y of "x y x", then failed.
func TestBadArgumentsAreTyped(t *testing.T) {
	c, ctx := startedMemCluster(t, "a", "b")
	defer c.Close()
	for _, tc := range []struct {
		names []string
		want  error
	}{
		{[]string{"x", "y", "x"}, ErrDuplicateNode},
		{[]string{"z", "a"}, ErrDuplicateNode},
		{[]string{"w", "Bad"}, identity.ErrInvalidName},
	} {
		if err := c.AddNodes(ctx, tc.names...); !errors.Is(err, tc.want) {
			t.Errorf("AddNodes%q: %v, want %v", tc.names, err, tc.want)
		}
		if got := c.Names(); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("after AddNodes%q the cluster holds %v, want a and b only", tc.names, got)
		}
	}
	for _, p := range []LinkParams{
		{Latency: -time.Millisecond},
		{Loss: 1.5},
		{Loss: -0.1},
		{Loss: math.NaN()},
		{Shape: Shape{Queue: 5000}},
	} {
		if err := c.Link(ctx, "a", "b", p); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Link a-b %+v: %v, want ErrInvalidArgument", p, err)
		}
	}
	if err := c.Link(ctx, "a", "a", LinkParams{}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Link a-a: %v, want ErrInvalidArgument", err)
	}
	if err := c.Link(ctx, "a", "b", LinkParams{}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLink("a", "b", LinkParams{Loss: 2}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SetLink a-b loss 2: %v, want ErrInvalidArgument", err)
	}
}

// TestUnknownDestinationIsTyped: Route and Transfer to a name that is no
// node of the cluster fail with an error wrapping ErrUnknownNode, as they
// do for such a source, while Route to a node, running or down, answers
// without an error. Before, Route returned ok false and a nil error, as
// for a node merely unreachable, and Transfer failed with the node's "no
// route".
func TestUnknownDestinationIsTyped(t *testing.T) {
	c, ctx := startedMemCluster(t, "a", "b")
	defer c.Close()
	if err := c.Link(ctx, "a", "b", LinkParams{}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := c.Route("a", "zz"); ok || !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Route a→zz: ok %v, error %v, want an error wrapping ErrUnknownNode", ok, err)
	}
	if _, err := c.Transfer(ctx, "a", "zz", 1024); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Transfer a→zz: %v, want an error wrapping ErrUnknownNode", err)
	}
	if _, _, err := c.Route("a", "b"); err != nil {
		t.Errorf("Route a→b: %v, want no error (b is a node)", err)
	}
	if err := c.Kill("b"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Route("a", "b"); err != nil {
		t.Errorf("Route a→b, b killed: %v, want no error (b is a node, down)", err)
	}
}

// TestTransferToDownNodeIsTyped: Transfer to or from a node that is down
// (killed and not restarted) fails at once with an error wrapping
// ErrNodeDown, before any circuit opens, while Transfer to a running node
// that the source cannot reach still fails with circuit.ErrNoRoute, and
// one to the node restarted works. Before, Transfer to the killed node
// dialled it and failed only when its context ended (30 s here), with
// the node's "link lost" or "no route".
func TestTransferToDownNodeIsTyped(t *testing.T) {
	c, ctx := startedMemCluster(t, "a", "b", "c")
	defer c.Close()
	if err := c.Link(ctx, "a", "b", LinkParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transfer(ctx, "a", "c", 1024); !errors.Is(err, circuit.ErrNoRoute) || errors.Is(err, ErrNodeDown) {
		t.Errorf("Transfer a→c, c running and not linked: %v, want an error wrapping circuit.ErrNoRoute", err)
	}
	if err := c.Kill("b"); err != nil {
		t.Fatal(err)
	}
	for _, ab := range [][2]string{{"a", "b"}, {"b", "a"}} {
		if _, err := c.Transfer(ctx, ab[0], ab[1], 1024); !errors.Is(err, ErrNodeDown) {
			t.Errorf("Transfer %s→%s, b killed: %v, want an error wrapping ErrNodeDown", ab[0], ab[1], err)
		}
	}
	if err := c.Restart(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transfer(ctx, "a", "b", 1024); err != nil {
		t.Errorf("Transfer a→b, b restarted: %v", err)
	}
}
