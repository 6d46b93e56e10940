package simulate_test

import (
	"context"
	"errors"
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

// A script that does not parse names its line; the error is a
// *ParseError.
func ExampleParse() {
	_, err := simulate.Parse("diamond.sim", "nodes a b\nlink a-b\n\nkill b\nrestart a\n")
	var pe *simulate.ParseError
	if errors.As(err, &pe) {
		fmt.Println("line", pe.Line)
	}
	fmt.Println(err)
	// Output:
	// line 5
	// diamond.sim:5: restart a: a is running (kill it first)
}

// Run executes a parsed script on a new cluster and reports each step.
func ExampleRun() {
	script, err := simulate.Parse("line.sim", `
nodes a b c
link a-b b-c
wait converged
expect route a c hops=2 via=b
transfer a c 64KiB
kill b
expect unreachable a c
`)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	report, err := simulate.Run(ctx, script, simulate.Config{Backend: simulate.BackendMem}, io.Discard)
	if err != nil {
		log.Fatal(err)
	}
	for _, st := range report.Steps {
		fmt.Println(st.Line, st.Status, st.Step)
	}
	fmt.Println("ok:", report.OK())
	// Output:
	// 2 ok nodes a b c
	// 3 ok link a-b b-c
	// 4 ok wait converged
	// 5 pass expect route a c hops=2 via=b
	// 6 ok transfer a c 64KiB
	// 7 ok kill b
	// 8 pass expect unreachable a c
	// ok: true
}
