package node

import (
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// holdService writes to each circuit until it fails and reads nothing.
func holdService(t *testing.T, n *Node) {
	serve(t, n, "hold", func(c io.ReadWriteCloser) {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
}

// TestCloseEndsResumables: Close ends every resumable circuit starting or
// ending at the node and waits for their goroutines: circuits with their
// buffers full both ways, half-closed ones, ones closed with bytes
// undelivered (lingering until the resume timeout), and ones waiting for
// a resume at both ends after their relay crashed. When the nodes' Close
// returned, no goroutine of a resumable circuit is left; once the
// application's goroutines saw their circuits end, nothing is.
func TestCloseEndsResumables(t *testing.T) {
	before := goleak.IgnoreCurrent()
	// Registered first, so it runs after the cluster's cleanups.
	t.Cleanup(func() { goleak.VerifyNone(t, append(leakIgnores, before)...) })

	c := newCluster(t, true)
	sockets := map[string]*net.UDPConn{}
	c.tweak = func(cfg *Config) {
		cfg.ResumeTimeout = 5 * time.Minute // nothing ends on its own meanwhile
		if cfg.Name == "b" {
			ownSocket(t, sockets, cfg)
		}
	}
	c.build("x-y", "a-b", "b-d")
	c.waitRoute("x", "y", 1)
	c.waitRoute("a", "d", 2)
	holdService(t, c.nodes["y"])
	holdService(t, c.nodes["d"])

	dial := func(from, to string) *resumableConn {
		t.Helper()
		conn, err := c.nodes[from].Dial(ctxT(t, 10*time.Second), to, "hold")
		if err != nil {
			t.Fatal(err)
		}
		rc, ok := conn.(*resumableConn)
		if !ok {
			t.Fatalf("%s→%s: a %T, want a resumable circuit", from, to, conn)
		}
		if _, err := io.ReadFull(rc, make([]byte, 1)); err != nil { // the destination accepted it
			t.Fatal(err)
		}
		return rc
	}
	unread := make([]byte, 64<<10)

	// Full both ways: y writes until its window is spent, x reads no more.
	full := dial("x", "y")
	if _, err := full.Write(unread); err != nil {
		t.Fatal(err)
	}
	// Half-closed.
	half := dial("x", "y")
	if err := half.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// Closed with bytes y never read: x lingers until they are delivered.
	lingering := dial("x", "y")
	if _, err := lingering.Write(unread); err != nil {
		t.Fatal(err)
	}
	lingering.Close()
	// Waiting for a resume at a and at d: b, their only relay, crashes.
	parked := dial("a", "d")
	defer parked.Close()
	defer full.Close()
	defer half.Close()
	sockets["b"].Close()
	waitFor(t, "d's circuit to wait for a resume", 60*time.Second, func() bool {
		return c.nodes["d"].rbudget.usage().parked == 1
	})
	waitFor(t, "y's buffers to fill", 60*time.Second, func() bool {
		return c.nodes["y"].rbudget.usage().bytes >= 2*len(unread)
	})

	c.closeAll()
	var stacks []byte
	for size := 1 << 20; ; size *= 2 {
		stacks = make([]byte, size)
		if n := runtime.Stack(stacks, true); n < size {
			stacks = stacks[:n]
			break
		}
	}
	for _, g := range strings.Split(string(stacks), "\n\n") {
		for _, f := range []string{"(*Resumable).readLoop", "(*Resumable).writeLoop", "(*Resumable).resumeLoop"} {
			if strings.Contains(g, f) {
				t.Errorf("a resumable circuit's goroutine outlived the nodes' Close:\n%s", g)
			}
		}
	}
}

// endAll resets the bound circuits, then waits for each; a circuit bound
// after it ran (created while the node closed) is refused, so that its
// maker ends it instead of leaving it running past Close.
func TestCircuitSetEndAll(t *testing.T) {
	s := newCircuitSet()
	var order []string
	bound := s.add(false, nil)
	if !s.bindWait(bound, func() { order = append(order, "reset") }, func() { order = append(order, "wait") }) {
		t.Fatal("bindWait refused before endAll")
	}
	late := s.add(false, nil) // made before endAll, bound after
	s.endAll()
	if got := strings.Join(order, ","); got != "reset,wait" {
		t.Errorf("endAll ran %q, want the reset then the wait", got)
	}
	if s.bindWait(late, func() {}, func() {}) {
		t.Error("bindWait accepted a circuit after endAll: Close would not end it")
	}
}
