package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// trickleServer is a TCP service that writes 1 KiB every 5 ms until its
// connection fails: a download that is still under way when it is cut.
func trickleServer(t *testing.T) string {
	return tcpServer(t, func(c net.Conn) {
		buf := make([]byte, 1024)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// cutDownload connects to the forward at addr, reads 16 KiB of a
// download that never ends by itself, runs cut and reads on. It returns
// what ended the reads (io.EOF for a clean end) and how many bytes came.
func cutDownload(t *testing.T, addr string, cut func() error) (error, int64) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 16<<10)); err != nil {
		t.Fatalf("download before the cut: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cut() }()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		m, err := c.Read(buf)
		n += int64(m)
		if err != nil {
			if cerr := <-done; cerr != nil {
				t.Fatalf("stop: %v", cerr)
			}
			return err, n
		}
	}
}

// Withdrawing an exposed service (Expose's stop, the CLI's unexpose) while
// a download through it is under way cuts that download: the client of
// the forward at the other end must see it reset, never a clean end
// (README: "--forward/--expose close the TCP side of a failed circuit with
// RST, so a TCP client sees "connection reset", never a clean end of a
// cut transfer").
func TestUnexposeMidDownloadResetsTheForwardedClient(t *testing.T) {
	a, b := fwdPair(t)
	stopExpose, err := b.Expose("trickle", trickleServer(t))
	if err != nil {
		t.Fatal(err)
	}
	addr, stopForward, err := a.Forward("127.0.0.1:0", "b", "trickle")
	if err != nil {
		t.Fatal(err)
	}
	defer stopForward()

	err, n := cutDownload(t, addr.String(), stopExpose)
	if isTimeout(err) {
		t.Fatalf("download still open 20 s after the service was withdrawn (%d bytes more)", n)
	}
	if errors.Is(err, io.EOF) {
		t.Fatalf("client read a clean end (io.EOF) after %d more bytes of a download cut by unexpose at b; want the connection reset", n)
	}
	t.Logf("client read %d more bytes, then: %v", n, err)
}

// The same at the near end: stopping a forward (its stop, the CLI's
// unforward) while a download through it is under way resets the TCP
// client. Before, the forward closed its connections with FIN, and the
// client read a clean end of a download cut short.
func TestUnforwardMidDownloadResetsTheClient(t *testing.T) {
	a, b := fwdPair(t)
	stopExpose, err := b.Expose("trickle", trickleServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer stopExpose()
	addr, stopForward, err := a.Forward("127.0.0.1:0", "b", "trickle")
	if err != nil {
		t.Fatal(err)
	}

	err, n := cutDownload(t, addr.String(), stopForward)
	if isTimeout(err) {
		t.Fatalf("download still open 20 s after the forward stopped (%d bytes more)", n)
	}
	if errors.Is(err, io.EOF) {
		t.Fatalf("client read a clean end (io.EOF) after %d more bytes of a download cut by unforward at a; want the connection reset", n)
	}
	t.Logf("client read %d more bytes, then: %v", n, err)
}

// cutUpload starts a forward at a to a TCP sink exposed at b, writes
// 16 KiB through it, pauses as an upload between two writes does and runs
// cut (given the stops of the expose and the forward). It returns what
// ended the sink's reads (io.EOF for a clean end) and how many bytes it
// read.
func cutUpload(t *testing.T, cut func(stopExpose, stopForward func() error) error) (error, int64) {
	t.Helper()
	a, b := fwdPair(t)
	type end struct {
		n   int64
		err error
	}
	result := make(chan end, 1)
	var got atomic.Int64
	target := tcpServer(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			got.Add(int64(n))
			if err != nil {
				result <- end{got.Load(), err}
				return
			}
		}
	})
	c, stopExpose, stopForward := forwardTo(t, a, b, "sink", target)
	if _, err := c.Write(make([]byte, 16<<10)); err != nil {
		t.Fatal(err)
	}
	// The bytes reach the sink; the client has more to send.
	waitFor(t, "the sink to read the 16 KiB sent", 10*time.Second, func() bool { return got.Load() >= 16<<10 })
	if err := cut(stopExpose, stopForward); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case e := <-result:
		return e.err, e.n
	case <-time.After(20 * time.Second):
		t.Fatal("sink connection still open 20 s after the cut")
		return nil, 0
	}
}

// An upload cut by withdrawing the exposed service (unexpose) does not
// reach the TCP service as a complete one: the service sees its
// connection reset. Before, it read a clean end after the 16 KiB sent.
func TestUnexposeMidUploadResetsTheService(t *testing.T) {
	err, n := cutUpload(t, func(stopExpose, _ func() error) error { return stopExpose() })
	if errors.Is(err, io.EOF) {
		t.Fatalf("service read a clean end (io.EOF) after %d bytes of an upload the client never finished (cut by unexpose at b); want the connection reset", n)
	}
	t.Logf("service read %d bytes, then: %v", n, err)
}

// The same cut at the near end: stopping the forward (unforward) in the
// middle of an upload must reset the service's connection at the far end.
func TestUnforwardMidUploadResetsTheService(t *testing.T) {
	err, n := cutUpload(t, func(_, stopForward func() error) error { return stopForward() })
	if errors.Is(err, io.EOF) {
		t.Fatalf("service read a clean end (io.EOF) after %d bytes of an upload the client never finished (cut by unforward at a); want the connection reset", n)
	}
	t.Logf("service read %d bytes, then: %v", n, err)
}

// Half-close from the service's side first: the service answers, shuts
// its sending side and goes on reading. The client of the forward reads
// the answer and a clean end, and what it sends after that still reaches
// the service, whole, before the service's end of input.
func TestForwardServiceHalfClosesFirst(t *testing.T) {
	a, b := fwdPair(t)
	type end struct {
		n   int64
		err error
	}
	result := make(chan end, 1)
	target := tcpServer(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write([]byte("answer")); err != nil {
			result <- end{0, err}
			return
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			result <- end{0, err}
			return
		}
		n, err := io.Copy(io.Discard, c)
		result <- end{n, err}
	})
	c, _, _ := forwardTo(t, a, b, "answer-first", target)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v; want \"answer\" then a clean end", got, err)
	}
	const size = 4 << 20
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatalf("write after the service's half-close: %v", err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-result:
		if e.err != nil || e.n != size {
			t.Fatalf("service read %d bytes, %v; want %d then a clean end", e.n, e.err, size)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("service never read the client's end")
	}
}

// forwardTo exposes target as service at b, forwards a local port of a to
// it and connects there: the TCP client's connection (20 s deadline) and
// the stops of the expose and the forward, which the test's cleanup also
// runs.
func forwardTo(t *testing.T, a, b *Node, service, target string) (c net.Conn, stopExpose, stopForward func() error) {
	t.Helper()
	stopExpose, err := b.Expose(service, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopExpose() })
	addr, stopForward, err := a.Forward("127.0.0.1:0", "b", service)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopForward() })
	c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, stopExpose, stopForward
}

// flakyListener fails every other Accept with EMFILE, as a listener does
// when the process is out of file descriptors and some close meanwhile,
// until it is closed.
type flakyListener struct {
	net.Listener
	n atomic.Int64
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.n.Add(1)%2 == 1 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptFailuresLoggedOnceAMinute: a forward's listener that fails to
// accept (the process is out of file descriptors) while local clients
// keep connecting, each success resetting the backoff, was one WARN line
// per failure: 20 connections, 20 lines. Now one a minute, the next
// carrying the count held back.
func TestAcceptFailuresLoggedOnceAMinute(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var lines atomic.Int64
	p := newPump(&flakyListener{Listener: inner}, slog.New(countHandler{"accept failed", &lines}))
	go p.run(func(ctx context.Context, c net.Conn) (net.Conn, error) { return nil, errors.New("no other side here") })
	defer p.stop()
	const conns = 20
	for range conns {
		c, err := net.DialTimeout("tcp", inner.Addr().String(), 5*time.Second)
		if errors.Is(err, syscall.ECONNRESET) {
			// The pump accepted and reset it before the dial looked at
			// its socket: its accept came.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		c.Read(make([]byte, 1)) // the pump closes it: its accept came
		c.Close()
	}
	if n := lines.Load(); n != 1 {
		t.Fatalf("%d connections, each after a failed accept: %d \"accept failed\" lines, want 1", conns, n)
	}
}

// A circuit the application resets, without a Close after it, lets go of
// its place in the node's tables: Reset went to the circuit itself, past
// the node's tracking, which kept the circuit counted (and its span
// open) until a Close that a caller resetting need not make.
func TestResetCircuitLeavesTheNodesTables(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a := c.nodes["a"]
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", EchoService, DialOptions{NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	echoOnce(t, conn, "x")
	if n := a.Status().Circuits; n != 1 {
		t.Fatalf("a counts %d circuits with one open, want 1", n)
	}
	conn.(interface{ Reset(uint64) }).Reset(circuit.CloseCancelled)
	waitFor(t, "a to let go of the circuit it reset", 10*time.Second, func() bool { return a.Status().Circuits == 0 })
}
