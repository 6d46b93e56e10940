package simulate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// node.Config.PacketConn says "Close closes it": a closed node must not
// leave the socket it was given open.
func TestNodeCloseClosesPacketConn(t *testing.T) {
	be, err := newQUICBackend("contract", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer be.close()
	cfg := node.Config{Name: "a", GracePeriod: time.Millisecond, Logger: Config{}.logger()}
	if err := be.configure("a", &cfg); err != nil {
		t.Fatal(err)
	}
	pc := cfg.PacketConn.(*packetConn)
	defer pc.Close()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteTo([]byte("x"), pc.LocalAddr()); err == nil {
		t.Fatal("after node.Close the Config.PacketConn is still open; its documentation says Close closes it")
	}
}

// Two linked nodes on in-memory links closing at the same time: under the
// race detector, memlink's Transport.Close (waiting for its Handler calls)
// races with the LinkDown that the peer's Close posts to it. Cluster.Close
// closes all its nodes concurrently and relies on this.
func TestMemlinkConcurrentClose(t *testing.T) {
	for range 20 {
		c, err := NewCluster(Config{Backend: BackendMem})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := c.AddNodes(ctx, "a", "b"); err != nil {
			t.Fatal(err)
		}
		if err := c.Link(ctx, "a", "b", LinkParams{}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, n := range []*node.Node{c.Node("a"), c.Node("b")} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.Close()
			}()
		}
		wg.Wait()
		c.Close()
	}
}
