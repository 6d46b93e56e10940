package node_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// startLine starts nodes on loopback QUIC with a throwaway CA and links
// each to the next, as a line. A real deployment loads identities with
// identity.LoadDir and links with Config.StaticLinks or gossip.
func startLine(ctx context.Context, names ...string) ([]*node.Node, error) {
	ca, err := identity.NewCA("example", time.Hour)
	if err != nil {
		return nil, err
	}
	var nodes []*node.Node
	for i, name := range names {
		id, err := ca.Issue(name, time.Hour)
		if err != nil {
			return nil, err
		}
		n, err := node.New(node.Config{Identity: id, ListenAddr: "127.0.0.1:0"})
		if err != nil {
			return nil, err
		}
		if err := n.Start(ctx); err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		if i > 0 {
			if err := nodes[i-1].Link(ctx, n.Addr().String()); err != nil {
				return nil, err
			}
		}
	}
	last := nodes[len(nodes)-1].Name()
	for nodes[0].Ping(ctx, last); ; time.Sleep(10 * time.Millisecond) {
		if p, ok := nodes[0].Peer(last); ok && p.Reachable {
			return nodes, nil
		}
	}
}

func closeAll(nodes []*node.Node) {
	for _, n := range nodes {
		n.Close()
	}
}

// A service on one node, reached from another across a relay: Listen
// gives a net.Listener of circuits, Dial a net.Conn.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := startLine(ctx, "alpha", "bravo", "charlie")
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll(nodes)
	alpha, charlie := nodes[0], nodes[2]

	lis, err := charlie.Listen("greet")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello %s, this is %s\n", c.RemoteAddr(), c.LocalAddr())
			c.Close()
		}
	}()

	conn, err := alpha.Dial(ctx, "charlie", "greet")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	msg, _ := io.ReadAll(conn)
	fmt.Print(string(msg))
	// Output: hello alpha/greet, this is charlie/greet
}

// Expose publishes a local TCP server as a mesh service; Forward gives a
// local TCP port that tunnels to it.
func ExampleNode_Expose() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := startLine(ctx, "alpha", "bravo")
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll(nodes)
	alpha, bravo := nodes[0], nodes[1]

	// A plain TCP server on bravo's host.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer tcp.Close()
	go http.Serve(tcp, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "served by bravo's web server")
	}))

	stopExpose, err := bravo.Expose("web", tcp.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer stopExpose()
	addr, stopForward, err := alpha.Forward("127.0.0.1:0", "bravo", "web")
	if err != nil {
		log.Fatal(err)
	}
	defer stopForward()

	// Any TCP client on alpha's host uses the forwarded port.
	resp, err := http.Get("http://" + addr.String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: served by bravo's web server
}

// Subscribe reports links and peers coming and going.
func ExampleNode_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := startLine(ctx, "alpha", "bravo", "charlie")
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll(nodes[:2])
	alpha, charlie := nodes[0], nodes[2]

	events, unsubscribe, err := alpha.Subscribe(16)
	if err != nil {
		log.Fatal(err)
	}
	defer unsubscribe()
	charlie.Close() // charlie leaves: alpha hears it went away
	for ev := range events {
		if ev.Peer == "charlie" {
			fmt.Println(ev.Kind, ev.Peer)
			break
		}
	}
	// Output: peer-down charlie
}

// HTTPClient sends requests to HTTP servers on mesh services: the URL is
// http://PEER/SERVICE/path.
func ExampleNode_HTTPClient() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := startLine(ctx, "alpha", "bravo", "charlie")
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll(nodes)
	alpha, charlie := nodes[0], nodes[2]

	lis, err := charlie.Listen("api")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s from %s\n", r.Method, r.URL.Path, r.RemoteAddr)
	})}
	go srv.Serve(lis)
	defer srv.Close()

	resp, err := alpha.HTTPClient().Get("http://charlie/api/v1/status")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: GET /v1/status from alpha/api
}

// gRPC runs unchanged over circuits: the server serves a mesh listener and
// the client dials through the node.
func ExampleNode_Dial_grpc() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := startLine(ctx, "alpha", "bravo", "charlie")
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll(nodes)
	alpha, charlie := nodes[0], nodes[2]

	lis, err := charlie.Listen("grpc")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	cc, err := grpc.NewClient("passthrough:///charlie",
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the circuit is sealed end to end
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return alpha.Dial(ctx, "charlie", "grpc")
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.GetStatus())
	// Output: SERVING
}
