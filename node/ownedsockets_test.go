package node

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/hashicorp/memberlist"
)

// TestSocketsGivenToANodeThatNeverRanAreReleased: a service hands the
// node a UDP socket (Config.PacketConn) and a gossip transport on TCP
// and UDP sockets of its own (Config.Discovery.Transport), which the
// node's Close closes, then ends the node before it ran: Close before
// Start, a Start whose ctx had ended, or one stopped by its ctx while
// it resolved its static links; or it runs the node without a gossip
// BindAddr. Before, Close closed neither unless Start had got as far as
// to use it: the UDP socket stayed open, the gossip transport kept its
// sockets and its two goroutines, and a node made again on the same
// ports failed to bind them. Now each is closed however far Start got,
// and the ports can be bound again.
func TestSocketsGivenToANodeThatNeverRanAreReleased(t *testing.T) {
	for _, k := range []struct {
		name    string
		unbound bool // no Discovery.BindAddr
		end     func(t *testing.T, n *Node, resolving <-chan struct{})
	}{
		{"close before start", false, func(t *testing.T, n *Node, _ <-chan struct{}) {}},
		{"start with an ended ctx", false, func(t *testing.T, n *Node, _ <-chan struct{}) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := n.Start(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("Start with an ended ctx: %v, want context.Canceled", err)
			}
		}},
		{"start stopped while resolving", false, func(t *testing.T, n *Node, resolving <-chan struct{}) {
			ctx, cancel := context.WithCancel(context.Background())
			res := make(chan error, 1)
			go func() { res <- n.Start(ctx) }()
			<-resolving
			cancel()
			if err := <-res; !errors.Is(err, context.Canceled) {
				t.Errorf("Start stopped while resolving: %v, want context.Canceled", err)
			}
		}},
		{"started without a gossip BindAddr", true, func(t *testing.T, n *Node, _ <-chan struct{}) {
			if err := n.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(k.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
			gossip, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{"127.0.0.1"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { gossip.Shutdown() })
			gossipAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(gossip.GetAutoBindPort()))
			r, resolving := stallingResolver()
			cfg := Config{Name: "a", Insecure: true, GracePeriod: -1, Logger: testLogger(t), PacketConn: pc,
				StaticLinks: []string{"seed.example.invalid:4242"},
				Discovery:   DiscoveryConfig{BindAddr: gossipAddr, Transport: gossip, Resolver: r}}
			if k.unbound {
				cfg.StaticLinks, cfg.Discovery.BindAddr = nil, ""
			}
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			k.end(t, n, resolving)
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if _, err := pc.WriteTo([]byte{1}, pc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Config.PacketConn after Close: a write gives %v, want net.ErrClosed (the socket closed)", err)
			}
			if ln, err := net.Listen("tcp", gossipAddr); err != nil {
				t.Errorf("gossip transport's TCP port after Close: %v, want it free", err)
			} else {
				ln.Close()
			}
			if again, err := net.ListenPacket("udp", pc.LocalAddr().String()); err != nil {
				t.Errorf("Config.PacketConn's port after Close: %v, want it free", err)
			} else {
				again.Close()
			}
		})
	}
}
