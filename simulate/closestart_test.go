package simulate

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestCloseDuringAddNodesLeavesNoNodeRunning: Close while AddNodes (or
// Restart) is starting a node. The start checks again, once the node has
// started, whether the cluster closed meanwhile: if so it closes the node
// itself and fails with an error unwrapping to net.ErrClosed, so no node
// outlives Close unseen. The NodeConfig hook (called between start's
// first check and node.New) holds the start until Close has returned, to
// hit the window every time.
func TestCloseDuringAddNodesLeavesNoNodeRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	inStart, closed := make(chan struct{}), make(chan struct{})
	c, err := NewCluster(Config{Backend: BackendMem, NodeConfig: func(cfg *node.Config) {
		if cfg.Name == "late" {
			close(inStart)
			<-closed
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
	close(closed)
	err = <-added
	if n := c.Node("late"); n != nil {
		t.Errorf("after Close, AddNodes returned %v and node late runs (Close never closes it)", err)
		defer n.Close() // for the leak check: what Close should have done
	}
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("AddNodes on a cluster closed meanwhile returned %v, want an error unwrapping to net.ErrClosed", err)
	}
}

// TestKillAndRestartAfterCloseRefuse: once Close began, Kill and Restart
// fail with an error unwrapping to net.ErrClosed rather than closing or
// starting a node behind Close's back.
func TestKillAndRestartAfterCloseRefuse(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, err := NewCluster(Config{Backend: BackendMem})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.AddNodes(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
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
