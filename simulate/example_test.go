package simulate_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/circuitmesh/circuitmesh/simulate"
)

// A test can run its own services on simulated nodes: the cluster's nodes
// are real node.Node values, so Listen and Dial work as in production.
func ExampleCluster() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := simulate.NewCluster(simulate.Config{Backend: simulate.BackendMem})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.AddNodes(ctx, "a", "b", "c"); err != nil {
		log.Fatal(err)
	}
	for _, e := range [][2]string{{"a", "b"}, {"b", "c"}} {
		if err := c.Link(ctx, e[0], e[1], simulate.LinkParams{Latency: time.Millisecond}); err != nil {
			log.Fatal(err)
		}
	}

	lis, err := c.Node("c").Listen("time")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "c answers %s\n", conn.RemoteAddr())
			conn.Close()
		}
	}()

	for {
		if p, ok := c.Node("a").Peer("c"); ok && p.Reachable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn, err := c.Node("a").Dial(ctx, "c", "time")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	msg, _ := io.ReadAll(conn)
	fmt.Print(string(msg))
	// Output: c answers a/time
}
