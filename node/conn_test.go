package node

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// pipeVia returns a MakePipe for nettest that opens circuits from a to
// the "pipe" service on b with opt. An early circuit is opened by its
// first Write, so one byte is sent and read before the pipe is handed to
// nettest (the source's first Read still takes the result).
func pipeVia(t *testing.T, c *cluster, a, b string, opt DialOptions) nettest.MakePipe {
	lis, err := c.nodes[b].Listen("pipe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return func() (c1, c2 net.Conn, stop func(), err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c1, err = c.nodes[a].DialWith(ctx, b, "pipe", opt)
		if err != nil {
			return nil, nil, nil, err
		}
		if opt.Early {
			if _, err := c1.Write([]byte{1}); err != nil {
				c1.Close()
				return nil, nil, nil, err
			}
		}
		c2, err = lis.Accept()
		if err != nil {
			c1.Close()
			return nil, nil, nil, err
		}
		if opt.Early {
			if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
				c1.Close()
				c2.Close()
				return nil, nil, nil, err
			}
		}
		return c1, c2, func() { c1.Close(); c2.Close() }, nil
	}
}

func TestNettestConnDirect(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	nettest.TestConn(t, pipeVia(t, c, "a", "b", DialOptions{}))
}

func TestNettestConnThroughRelay(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	nettest.TestConn(t, pipeVia(t, c, "a", "b", DialOptions{}))
}

// TestNettestConnEveryKind: every other kind of circuit a user can dial
// is a net.Conn as the conformance suite has it: early (resumable or not,
// direct or relayed), not resumable, without end-to-end security, and to
// the node's own name. An early circuit without resumption hung the
// suite: its service was not accepted until the source's next call.
func TestNettestConnEveryKind(t *testing.T) {
	for _, k := range []struct {
		name string
		line []string // the path from a to b; a alone: a local circuit
		opt  DialOptions
		off  bool // E2EOff
	}{
		{"early/direct", []string{"a-b"}, DialOptions{Early: true}, false},
		{"early/relayed", []string{"a-r", "r-b"}, DialOptions{Early: true}, false},
		{"noresume/relayed", []string{"a-r", "r-b"}, DialOptions{NoResume: true}, false},
		{"noresume-early/relayed", []string{"a-r", "r-b"}, DialOptions{NoResume: true, Early: true}, false},
		{"unsealed/relayed", []string{"a-r", "r-b"}, DialOptions{}, true},
		{"unsealed-early/relayed", []string{"a-r", "r-b"}, DialOptions{Early: true}, true},
		{"local", nil, DialOptions{}, false},
		{"local-early", nil, DialOptions{Early: true}, false},
	} {
		t.Run(k.name, func(t *testing.T) {
			c := newCluster(t, true)
			if k.off {
				c.tweak = func(cfg *Config) { cfg.E2E = E2EOff }
			}
			b := "a"
			if k.line == nil {
				c.add("a")
			} else {
				c.build(k.line...)
				b = "b"
				c.waitRoute("a", "b", len(k.line))
			}
			nettest.TestConn(t, pipeVia(t, c, "a", b, k.opt))
		})
	}
}

func TestPastDeadlineFailsAtOnce(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	conn, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(-time.Second))
	start := time.Now()
	_, err = conn.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("read with a past deadline: %v after %v", err, time.Since(start))
	}
}

// TestSlowReaderBackpressure: a receiver that stops reading makes the
// sender block; what the path holds is bounded by the per-hop windows and
// relay buffers, not by what the sender wants to send.
func TestSlowReaderBackpressure(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r", "r-b")
	c.waitRoute("a", "b", 2)
	hold := make(chan struct{})
	serve(t, c.nodes["b"], "sink", func(conn io.ReadWriteCloser) {
		<-hold // never reads until released
		io.Copy(io.Discard, conn)
	})
	defer close(hold)
	conn, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", "sink")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 64<<10)
	var sent int64
	for {
		conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := conn.Write(buf)
		sent += int64(n)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write: %v", err)
			}
			break
		}
		if sent > 256<<20 {
			t.Fatalf("sender never blocked: %d bytes accepted with a stalled reader", sent)
		}
	}
	relayBuf := int64(c.nodes["r"].cfg.Limits.RelayBuffer)
	bound := pathBufferBound(2, relayBuf)
	t.Logf("sender blocked after %d bytes in flight (bound %d: 2 hops of %d-byte stream windows plus the relay's 2×%d)", sent, bound, links.DefaultMaxStreamWindow, relayBuf)
	if sent > bound {
		t.Fatalf("%d bytes in flight exceeds the bound %d", sent, bound)
	}
}

// pathBufferBound is what a path of hops links can hold for one circuit:
// each hop's QUIC stream receive window (the most a sender may have
// unacknowledged on it) plus each relay's two copy buffers.
func pathBufferBound(hops int, relayBuf int64) int64 {
	return int64(hops)*int64(links.DefaultMaxStreamWindow) + int64(hops-1)*2*relayBuf
}

func TestOverloadedIsTypedRefusal(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.Limits.MaxCircuitsPerSource = 2
		}
	}
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	serve(t, c.nodes["b"], "hold", func(conn io.ReadWriteCloser) { io.Copy(io.Discard, conn) })
	for i := 0; i < 2; i++ {
		conn, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", "hold")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
	}
	_, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", "hold")
	var re *circuit.RefusedError
	if !errors.Is(err, circuit.ErrOverloaded) || !errors.As(err, &re) || re.Node != "b" {
		t.Fatalf("third circuit: %v, want overloaded from b", err)
	}
}

func TestEventsAndGracefulClose(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.GracePeriod = 5 * time.Second }
	c.add("a")
	events, cancel, err := c.nodes["a"].Subscribe(16)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	c.build("a-b")
	want := map[string]bool{"link-up b": false, "peer-up b": false}
	waitEvents(t, events, want)

	// b closes gracefully while a circuit is open: the circuit finishes
	// (the half-closed echo completes), then a sees b go.
	conn, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	done := make(chan error, 1)
	go func() { done <- c.nodes["b"].Close() }()
	time.Sleep(50 * time.Millisecond)
	if _, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", EchoService); !errors.Is(err, circuit.ErrShuttingDown) {
		t.Fatalf("dial to a closing node: %v, want shutting down", err)
	}
	conn.Write([]byte("last words"))
	conn.(Conn).CloseWrite()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "last words" {
		t.Fatalf("open circuit during grace: %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("close: %v", err)
	}
	waitEvents(t, events, map[string]bool{"link-down b": false, "peer-down b": false})
}

func waitEvents(t *testing.T, events <-chan Event, want map[string]bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for missing := len(want); missing > 0; {
		select {
		case ev := <-events:
			k := ev.Kind.String() + " " + ev.Peer
			if seen, ok := want[k]; ok && !seen {
				want[k] = true
				missing--
			}
		case <-timeout:
			t.Fatalf("events not seen: %v", want)
		}
	}
}
