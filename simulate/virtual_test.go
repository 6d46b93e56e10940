package simulate

import (
	"context"
	"io"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A scenario that waits two minutes finishes long before two minutes pass,
// and its report says which clock each figure is on.
func TestVirtualTimeWaitsWithoutSleeping(t *testing.T) {
	for _, backend := range []Backend{BackendMem, BackendQUIC} {
		t.Run(string(backend), func(t *testing.T) {
			s, err := Parse("virtual.sim", `
nodes a b c d
link a-b b-c c-d latency=5ms
wait converged
wait 2m
expect route a d hops=3 via=b within=0s
transfer a d 256KiB
kill b
expect unreachable a d within=30s
restart b
wait converged
`)
			if err != nil {
				t.Fatal(err)
			}
			rep := Test(t, s, Config{Backend: backend})
			if testing.Verbose() {
				rep.WriteTable(t.Output())
			}
			if !rep.Virtual {
				t.Error("report does not say it ran in virtual time")
			}
			if rep.Duration < 2*time.Minute {
				t.Errorf("virtual duration %v, want at least the 2m the script waits", rep.Duration)
			}
			if rep.Wall <= 0 || rep.Wall >= rep.Duration {
				t.Errorf("wall time %v, want between 0 and the virtual %v", rep.Wall, rep.Duration)
			}
			var wait StepResult
			for _, st := range rep.Steps {
				if st.Step == "wait 2m" {
					wait = st
				}
			}
			if wait.Elapsed != 2*time.Minute {
				t.Errorf("wait 2m took %v of virtual time, want exactly 2m", wait.Elapsed)
			}
			var b strings.Builder
			if err := rep.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"in virtual time", "WALL", "virtual ("} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}

// A Cluster created inside a synctest bubble runs in virtual time with no
// help from Test: a user's own services on its nodes see a minute pass in
// no time, and the circuit between them still works.
func TestClusterInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c, err := NewCluster(Config{Backend: BackendQUIC})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.AddNodes(ctx, "a", "b", "c"); err != nil {
			t.Fatal(err)
		}
		for _, e := range [][2]string{{"a", "b"}, {"b", "c"}} {
			if err := c.Link(ctx, e[0], e[1], LinkParams{Latency: 10 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitConverged(ctx); err != nil {
			t.Fatal(err)
		}
		lis, err := c.Node("c").Listen("greeter")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		go func() {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			io.Copy(conn, conn)
		}()
		start := time.Now()
		time.Sleep(time.Minute)
		conn, err := c.Node("a").Dial(ctx, "c", "greeter")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q, %v", buf, err)
		}
		// Two hops of 10 ms each way: the round trip is virtual too.
		if rtt := time.Since(start) - time.Minute; rtt < 40*time.Millisecond {
			t.Errorf("echo round trip over 2 hops of 10ms took %v of virtual time, want at least 40ms", rtt)
		}
	})
}

// A Cluster of one's own on mem with Config.Ordered, inside a bubble: its
// links carry loss, and their latency delays the routing messages, so
// that the far end of a line of two 10 ms links is reached no sooner than
// 20 ms after the links came up (without Ordered mem latency is only a
// cost, and loss is refused).
func TestOrderedClusterInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := orderedCluster(t, "a", "b", "c")
		start := time.Now()
		for _, e := range [][2]string{{"a", "b"}, {"b", "c"}} {
			if err := c.Link(ctx, e[0], e[1], LinkParams{Latency: 10 * time.Millisecond, Loss: 0.1}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitConverged(ctx); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 20*time.Millisecond {
			t.Errorf("a line of two 10ms links converged in %v of virtual time, want at least 20ms", took)
		}
		res, err := c.Transfer(ctx, "a", "c", 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(res.Path, " "); got != "a b c" {
			t.Errorf("transfer path %q, want a b c", got)
		}
	})
}

// The progress of a wait converged counts the (node, destination) pairs
// reachable against those of the converged cluster, and what the
// in-memory links hold: nothing once converged.
func TestReachProgressCountsPairs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := orderedCluster(t, "a", "b", "c", "d")
		if got, want := c.reachProgress(), "pairs reachable 0 of 0, 4 of 4 nodes reach all theirs; routing in flight 0 payloads, 0.0 B (peak 0.0 B), 0 dropped"; got != want {
			t.Errorf("unlinked: %q, want %q", got, want)
		}
		for _, e := range [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}} {
			if err := c.Link(ctx, e[0], e[1], LinkParams{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitConverged(ctx); err != nil {
			t.Fatal(err)
		}
		c.quiesce()
		got := c.reachProgress()
		if want := "pairs reachable 12 of 12 (100.0%), 4 of 4 nodes reach all theirs; routing in flight 0 payloads, 0.0 B (peak "; !strings.HasPrefix(got, want) {
			t.Errorf("converged: %q, want it to start %q", got, want)
		}
		if strings.Contains(got, "peak 0.0 B") || !strings.HasSuffix(got, ", 0 dropped") {
			t.Errorf("converged: %q, want a peak above 0 and nothing dropped", got)
		}
	})
}

// orderedCluster starts the named nodes, unlinked, on an ordered mem
// cluster closed when the test (a synctest bubble's) ends.
func orderedCluster(t *testing.T, names ...string) *Cluster {
	t.Helper()
	c, err := NewCluster(Config{Backend: BackendMem, Ordered: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.AddNodes(context.Background(), names...); err != nil {
		t.Fatal(err)
	}
	return c
}
