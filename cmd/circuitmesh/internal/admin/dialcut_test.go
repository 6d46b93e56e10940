package admin

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// linkedNodes starts two real nodes a and b, links them and waits until a
// reaches b.
func linkedNodes(t *testing.T) (a, b *node.Node) {
	t.Helper()
	ca, err := identity.NewCA("dialcut", 0)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *node.Node {
		id, err := ca.Issue(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		n, err := node.New(node.Config{Identity: id, GracePeriod: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Start(ctx); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a, b = start("a"), start("b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Link(ctx, b.Addr().String()); err != nil {
		t.Fatalf("link a to b: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, p := range a.Peers() {
			if p.Name == "b" && p.Reachable {
				return a, b
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("a never reached b")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A `circuitmesh dial` that dies in the middle of an upload (killed, its
// socket closed with the service's greeting still unread, so the daemon
// reads ECONNRESET) did not finish what it was sending: the service
// behind the exposed port sees its connection reset, as a TCP client of
// --forward that is reset makes the service see. Before, the daemon closed
// the circuit cleanly and the service read io.EOF after the 16 KiB sent,
// as if the upload were whole.
func TestDialClientDyingMidUploadResetsTheService(t *testing.T) {
	a, b := linkedNodes(t)
	type end struct {
		n   int64
		err error
	}
	result := make(chan end, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute)) // beyond the test's wait
		c.Write([]byte("ready\n"))                 // a greeting the client never reads
		n, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF // io.Copy reports a clean end as nil
		}
		result <- end{n, err}
	}()
	stop, err := b.Expose("sink", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	cl, _ := startServer(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	circ, err := cl.Dial(ctx, "b", "sink")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := circ.Write(make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	// The process dies once the greeting reached its socket: the socket
	// closes with data unread.
	uc := circ.Conn.(*net.UnixConn)
	for deadline := time.Now().Add(10 * time.Second); unread(t, uc) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the service's greeting never reached the dial client's socket")
		}
	}
	circ.Close()

	select {
	case e := <-result:
		if !errors.Is(e.err, syscall.ECONNRESET) {
			t.Fatalf("service read %d bytes of an upload whose dial client died mid-way, then %v; want the connection reset", e.n, e.err)
		}
		t.Logf("service read %d bytes, then: %v", e.n, e.err)
	case <-time.After(20 * time.Second):
		t.Fatal("service connection still open 20 s after the dial client died")
	}
}

// unread is how many bytes wait in c's receive queue (FIONREAD).
func unread(t *testing.T, c *net.UnixConn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil {
		t.Fatal(err)
	}
	if errno != 0 {
		t.Fatalf("FIONREAD: %v", errno)
	}
	return int(n)
}
