package simulate

import (
	"context"
	"errors"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/node"
)

// TestCloseDuringAddNodesLeavesNoNodeRunning: Close while AddNodes (or
// Restart) is starting a node. Close cancels the start and waits for it:
// the start checks again, once the node has started, whether the cluster
// closed meanwhile, closes the node itself if so and fails with an error
// unwrapping to net.ErrClosed, all before Close returns, so no node
// outlives Close. The NodeConfig hook (called between start's first check
// and node.New) holds the start until Close has begun, to hit the window
// every time. Before, Close did not wait: it returned while the start
// went on, and node late ran after it (until AddNodes closed it).
func TestCloseDuringAddNodesLeavesNoNodeRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var c *Cluster
	inStart := make(chan struct{})
	c, err := NewCluster(Config{Backend: BackendMem, NodeConfig: func(cfg *node.Config) {
		if cfg.Name == "late" {
			close(inStart)
			<-c.ctx.Done() // Close has begun
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.AddNodes(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	added := make(chan error, 1)
	go func() { added <- c.AddNodes(ctx, "late") }()
	<-inStart
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// AddNodes has ended its start when Close returns (Close waits for
	// it); its return value reaches the channel a moment after.
	select {
	case err = <-added:
	case <-time.After(10 * time.Second):
		t.Error("AddNodes still starting node late 10 s after Close returned")
		err = <-added
	}
	if n := c.Node("late"); n != nil {
		t.Errorf("after Close, AddNodes returned %v and node late runs (Close never closes it)", err)
		defer n.Close() // for the leak check: what Close should have done
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("AddNodes on a cluster closed meanwhile returned %v, want an error unwrapping to net.ErrClosed", err)
	}
}

// TestCloseRacingAddNodes: AddNodes of eight nodes races Close, 45
// times, Close starting after a different number of the nodes were added.
// When Close returns, every node's transport is closed and no node makes
// one later; the AddNodes started every node or fails with an error
// unwrapping to net.ErrClosed; and no goroutine is left.
func TestCloseRacingAddNodes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	names := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}
	for i := range 45 {
		var (
			mu         sync.Mutex
			transports []links.Transport
			returned   bool // Close returned
			late       []string
		)
		c, err := NewCluster(Config{Backend: BackendMem, NodeConfig: func(cfg *node.Config) {
			newTransport := cfg.NewTransport
			cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
				tr, err := newTransport(h, role)
				mu.Lock()
				defer mu.Unlock()
				if returned {
					late = append(late, cfg.Name)
				}
				if err == nil {
					transports = append(transports, tr)
				}
				return tr, err
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		added := make(chan error, 1)
		go func() { added <- c.AddNodes(ctx, names...) }()
		for len(c.Names()) < i%(len(names)+1) {
			runtime.Gosched()
		}
		if err := c.Close(); err != nil {
			t.Errorf("run %d: close: %v", i, err)
		}
		mu.Lock()
		returned = true
		for _, tr := range transports {
			// A transport dials itself only once closed.
			if _, err := tr.Dial(ctx, tr.LocalAddr().String()); !errors.Is(err, links.ErrClosed) {
				t.Errorf("run %d: after Close returned, the transport of node %s is open", i, tr.LocalAddr())
			}
		}
		mu.Unlock()
		err = <-added
		cancel()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("run %d: AddNodes racing Close returned %v, want nil or an error unwrapping to net.ErrClosed", i, err)
		}
		mu.Lock()
		if len(late) > 0 {
			t.Errorf("run %d: nodes %v made their transport after Close returned", i, late)
		}
		mu.Unlock()
		if t.Failed() {
			return
		}
	}
}

// TestKillAndRestartAfterCloseRefuse: once Close began, Kill and Restart
// fail with an error unwrapping to net.ErrClosed rather than closing or
// starting a node behind Close's back.
func TestKillAndRestartAfterCloseRefuse(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, ctx := startedMemCluster(t, "a", "b")
	if err := c.Kill("b"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := c.Kill("a"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Kill after Close returned %v, want an error unwrapping to net.ErrClosed", err)
	}
	if err := c.Restart(ctx, "b"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Restart after Close returned %v, want an error unwrapping to net.ErrClosed", err)
	}
	if n := c.Node("b"); n != nil {
		n.Close()
		t.Errorf("Restart after Close left node b running")
	}
}

// TestRestartOfNodeNeverStarted: a member whose first start failed (here
// AddNodes with a cancelled context) is down, the names after it are not
// added, and Restart starts it; a
// Restart while AddNodes is still starting a node fails at once with
// ErrNodeUp. Before, both Restarts waited on the old instance's end, of
// an instance that never ran: they hung until their context ended (a
// minute of virtual time here).
func TestRestartOfNodeNeverStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold, held := make(chan struct{}), make(chan struct{})
		c, err := NewCluster(Config{Backend: BackendMem, Ordered: true, NodeConfig: func(cfg *node.Config) {
			if cfg.Name == "slow" {
				close(held)
				<-hold
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.AddNodes(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.AddNodes(cancelled, "b", "z"); err == nil {
			t.Fatal("AddNodes with a cancelled context started b")
		}
		if got := c.Names(); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("after b's start failed the cluster holds %v, want a and b (down) only", got)
		}
		if err := c.Link(context.Background(), "a", "b", LinkParams{}); !errors.Is(err, ErrNodeDown) {
			t.Fatalf("link to b, whose start failed: %v, want an error wrapping ErrNodeDown", err)
		}
		restart := func(name string) (time.Duration, error) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			err := c.Restart(ctx, name)
			return time.Since(start), err
		}
		if took, err := restart("b"); err != nil || took > time.Second {
			t.Fatalf("Restart of b, whose first start failed: %v after %v, want b started at once", err, took)
		}
		if err := c.Link(context.Background(), "a", "b", LinkParams{}); err != nil {
			t.Fatalf("link to the restarted b: %v", err)
		}
		if _, err := c.WaitConverged(context.Background()); err != nil {
			t.Fatal(err)
		}

		added := make(chan error, 1)
		go func() { added <- c.AddNodes(context.Background(), "slow") }()
		<-held
		took, err := restart("slow")
		if !errors.Is(err, ErrNodeUp) || took > time.Second {
			t.Errorf("Restart of slow while AddNodes starts it: %v after %v, want an error wrapping ErrNodeUp at once", err, took)
		}
		close(hold)
		if err := <-added; err != nil {
			t.Fatalf("AddNodes slow: %v", err)
		}
		if c.Node("slow") == nil {
			t.Error("slow is not running after its AddNodes")
		}
	})
}

// TestCloseTwiceWaitsForTheFirst: a second Close, called while the first
// is still closing the nodes, returns only once the first has returned,
// every node closed. Before, it returned nil at once, node a still
// running.
func TestCloseTwiceWaitsForTheFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := orderedCluster(t, "a", "b")
		hold, held := make(chan struct{}), make(chan struct{})
		c.closing = func(name string) {
			if name == "a" {
				close(held)
				<-hold
			}
		}
		first, second := make(chan error, 1), make(chan error, 1)
		go func() { first <- c.Close() }()
		<-held
		go func() { second <- c.Close() }()
		time.Sleep(time.Second) // virtual: the second Close has run as far as it can
		select {
		case err := <-second:
			t.Errorf("the second Close returned %v while the first was still closing node a", err)
			second <- err
		default:
		}
		close(hold)
		if err := <-first; err != nil {
			t.Errorf("first close: %v", err)
		}
		if err := <-second; err != nil {
			t.Errorf("second close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("third close: %v", err)
		}
	})
}

// TestWaitsEndWhenClosed: WaitConverged, WaitReachable and WaitMembers on
// a closed cluster cannot succeed any more, and fail at once with an
// error unwrapping to net.ErrClosed.
// Before, the first two re-checked the closed nodes until their context
// ended (a minute of virtual time here; for ever with
// context.Background), and WaitMembers on a cluster without gossip nodes
// returned nil: its check held for the none it found.
func TestWaitsEndWhenClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := orderedCluster(t, "a", "b", "c")
		for _, e := range [][2]string{{"a", "b"}, {"b", "c"}} {
			if err := c.Link(context.Background(), e[0], e[1], LinkParams{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitConverged(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for _, w := range []struct {
			name string
			wait func(context.Context) (time.Duration, error)
		}{{"WaitConverged", c.WaitConverged}, {"WaitReachable", c.WaitReachable}, {"WaitMembers", c.WaitMembers}} {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			start := time.Now()
			_, err := w.wait(ctx)
			cancel()
			if took := time.Since(start); !errors.Is(err, net.ErrClosed) || took > time.Second {
				t.Errorf("%s after Close: %v after %v, want an error unwrapping to net.ErrClosed at once", w.name, err, took)
			}
		}
	})
}

// TestChangesAfterCloseRefused: once Close has returned, every call that
// would change the network or open circuits fails with an error unwrapping
// to net.ErrClosed, instead of reporting success for a change to a
// network that no longer exists. Before, SetUnderlay returned nil and
// recorded the underlay, and HealUnderlay returned nothing, so it could
// not report the closed cluster.
func TestChangesAfterCloseRefused(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, ctx := startedMemCluster(t, "a", "b", "c")
	for _, ab := range [][2]string{{"a", "b"}, {"b", "c"}} {
		if err := c.Link(ctx, ab[0], ab[1], LinkParams{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	calls := map[string]func() error{
		"Link":      func() error { return c.Link(ctx, "a", "c", LinkParams{}) },
		"Unlink":    func() error { return c.Unlink("a", "b") },
		"SetLink":   func() error { return c.SetLink("a", "b", LinkParams{}) },
		"Cut":       func() error { return c.Cut("a", "b") },
		"Heal":      func() error { return c.Heal() },
		"Partition": func() error { return c.Partition([]string{"a"}, []string{"b", "c"}) },
		"Isolate":   func() error { return c.Isolate("b") },
		"Transfer":  func() error { _, err := c.Transfer(ctx, "a", "c", 1024); return err },
		"Workload":  func() error { _, err := c.Workload(ctx, WorkloadSpec{Circuits: 3}); return err },
		"SetUnderlay": func() error {
			return c.SetUnderlay(&Underlay{Region: map[string]string{"a": "eu", "b": "eu", "c": "eu"}, Inside: time.Millisecond})
		},
		"PartitionUnderlay": func() error { return c.PartitionUnderlay([]string{"a"}, []string{"b", "c"}) },
		"HealUnderlay":      c.HealUnderlay,
		"Discover":          func() error { return c.Discover(ctx, "s", "x") },
		"AddNodes":          func() error { return c.AddNodes(ctx, "d") },
		"Kill":              func() error { return c.Kill("a") },
		"Restart":           func() error { return c.Restart(ctx, "a") },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close returned %v, want an error unwrapping to net.ErrClosed", name, err)
		}
	}
}

// TestAddNodesBounded: a cluster holds at most MaxNodes nodes, as a
// script does; AddNodes of more names than the cluster has room for fails
// with ErrTooManyNodes and starts none of them, and of two calls racing
// for the last places one gets them all and the other none. Before, the
// Go API took any number, and a cluster larger than its nodes' route
// tables hold could never converge; then AddNodes("c", "d") with room for
// one started c and failed at d, leaving the cluster half-grown.
func TestAddNodesBounded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	defer func(n int) { maxClusterNodes = n }(maxClusterNodes)
	maxClusterNodes = 3
	c, ctx := startedMemCluster(t, "a", "b")
	defer c.Close()
	if err := c.AddNodes(ctx, "c", "d"); !errors.Is(err, ErrTooManyNodes) {
		t.Fatalf("AddNodes beyond the bound returned %v, want ErrTooManyNodes", err)
	}
	if got := c.Names(); !slices.Equal(got, []string{"a", "b"}) || c.Node("c") != nil {
		t.Fatalf("cluster holds %v after the refusal (c running: %v), want a and b only", got, c.Node("c") != nil)
	}
	maxClusterNodes = 4
	errs := make(chan error, 2)
	for _, pair := range [][]string{{"c", "d"}, {"e", "f"}} {
		go func() { errs <- c.AddNodes(ctx, pair...) }()
	}
	var failed int
	for range 2 {
		if err := <-errs; errors.Is(err, ErrTooManyNodes) {
			failed++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	got := c.Names()
	if failed != 1 || !slices.Equal(got, []string{"a", "b", "c", "d"}) && !slices.Equal(got, []string{"a", "b", "e", "f"}) {
		t.Fatalf("two AddNodes of two nodes racing for the last two places: %d refused, cluster holds %v; want one refused and a, b and one pair", failed, got)
	}
	for _, name := range got {
		if c.Node(name) == nil {
			t.Errorf("node %s is a member but does not run", name)
		}
	}
}

// TestRefusedDiscoverChangesNothing: Discover of more nodes than the
// cluster has room for, or with a name given twice, fails with
// ErrTooManyNodes or ErrDuplicateNode before any node starts, and leaves
// no trace: the seed is not taken (Discover with another seed works) and
// a name of the refused call added later runs without gossip. Before, the
// seed started before the names were checked, so the cluster held it and
// every later Discover with another seed failed.
func TestRefusedDiscoverChangesNothing(t *testing.T) {
	defer func(n int) { maxClusterNodes = n }(maxClusterNodes)
	maxClusterNodes = 4
	c, ctx := startedMemCluster(t, "a")
	defer c.Close()
	for _, tc := range []struct {
		names []string
		want  error
	}{
		{[]string{"x", "y", "z"}, ErrTooManyNodes},
		{[]string{"x", "x"}, ErrDuplicateNode},
	} {
		if err := c.Discover(ctx, "s", tc.names...); !errors.Is(err, tc.want) {
			t.Errorf("Discover s %q: %v, want %v", tc.names, err, tc.want)
		}
		if got := c.Names(); !slices.Equal(got, []string{"a"}) {
			t.Errorf("after the refused Discover s %q the cluster holds %v, want a only", tc.names, got)
		}
	}
	if err := c.AddNodes(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Members("x"); !errors.Is(err, ErrNoGossip) {
		t.Errorf("members of x, added by AddNodes after a refused Discover named it: %v, want ErrNoGossip", err)
	}
	if err := c.Discover(ctx, "t", "y"); err != nil {
		t.Errorf("Discover with seed t after the refused ones: %v", err)
	}
}

// startedMemCluster is a cluster on the mem backend with the named nodes
// started, and a context for the calls on it (30 s).
func startedMemCluster(t *testing.T, names ...string) (*Cluster, context.Context) {
	t.Helper()
	c, err := NewCluster(Config{Backend: BackendMem})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := c.AddNodes(ctx, names...); err != nil {
		t.Fatal(err)
	}
	return c, ctx
}
