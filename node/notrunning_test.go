package node

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// newStopped returns a node that was never started and one that was
// started and closed.
func newStopped(t *testing.T) (fresh, closed *Node) {
	t.Helper()
	fresh, err := New(Config{Name: "x", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	closed, err = New(Config{Name: "z", Mesh: "test", Insecure: true, GracePeriod: -1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed.Close()
	return fresh, closed
}

// TestForwardRefusedWhenNotRunning: Forward on a closed node (or one never
// started) listened on the TCP address and reported success; every
// connection to it then failed. Now it fails with ErrClosed (ErrNotStarted)
// without listening.
func TestForwardRefusedWhenNotRunning(t *testing.T) {
	fresh, closed := newStopped(t)
	for _, tc := range []struct {
		n    *Node
		want error
	}{{fresh, ErrNotStarted}, {closed, ErrClosed}} {
		addr, stop, err := tc.n.Forward("127.0.0.1:0", "y", EchoService)
		if !errors.Is(err, tc.want) {
			t.Errorf("Forward on a %s node: %v, want an error matching %v", tc.n.Status().State, err, tc.want)
		}
		if addr != nil || stop != nil {
			t.Errorf("Forward on a %s node returned a listener at %v", tc.n.Status().State, addr)
			if stop != nil {
				stop()
			}
		}
	}
}

// TestCallsOnAClosedNodeSayClosed: Link and Topology on a closed node said
// ErrNotStarted, and so did Dial on a node closed without being started,
// as if Start could still help. A node not started yet says
// ErrNotStarted; a closed one ErrClosed, and Dial the refusal of a node
// shutting down (as on a node closed after it started).
func TestCallsOnAClosedNodeSayClosed(t *testing.T) {
	fresh, closed := newStopped(t)
	ctx := context.Background()
	for _, tc := range []struct {
		n    *Node
		want error
	}{{fresh, ErrNotStarted}, {closed, ErrClosed}} {
		state := tc.n.Status().State
		if err := tc.n.Link(ctx, "127.0.0.1:1"); !errors.Is(err, tc.want) {
			t.Errorf("Link on a %s node: %v, want an error matching %v", state, err, tc.want)
		}
		if _, err := tc.n.Topology(ctx, TopologyOptions{}); !errors.Is(err, tc.want) {
			t.Errorf("Topology on a %s node: %v, want an error matching %v", state, err, tc.want)
		}
	}
	if _, err := fresh.Dial(ctx, "y", EchoService); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Dial on a new node: %v, want an error matching ErrNotStarted", err)
	}
	fresh.Close()
	for _, n := range []*Node{fresh, closed} {
		for _, peer := range []string{"y", n.Name()} {
			_, err := n.Dial(ctx, peer, EchoService)
			if !errors.Is(err, circuit.ErrShuttingDown) || errors.Is(err, ErrNotStarted) {
				t.Errorf("Dial %s on a closed node: %v, want an error matching circuit.ErrShuttingDown", peer, err)
			}
		}
		if err := n.Start(ctx); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Start on a closed node: %v, want an error matching ErrClosed", err)
		}
	}
}
