package node

import (
	"io"
	"net"
	"testing"
	"time"
)

// earlyPair builds a-b, serves "sink" on b (each circuit read to its end
// and reported) and opens one ordinary circuit first, so that a holds b's
// key record and the next sealed circuit takes the one-message handshake
// with early data.
func earlyPair(t *testing.T) (*cluster, <-chan sinkResult) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	got := make(chan sinkResult, 8)
	serve(t, c.nodes["b"], "sink", func(conn io.ReadWriteCloser) {
		b, err := io.ReadAll(conn)
		got <- sinkResult{string(b), err}
	})
	warm, err := c.nodes["a"].Dial(ctxT(t, 5*time.Second), "b", "sink")
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	<-got
	return c, got
}

type sinkResult struct {
	data string
	err  error
}

// TestEarlyNoResumeWriteThenCloseDelivers: a user opens an early circuit
// without resumption (DialOptions{Early: true, NoResume: true}), writes
// a message, and closes the circuit: Write and Close both succeed. The
// service must read the message and a clean end of stream. Before, the
// circuit was closed before its one-message handshake completed, so
// Close sent no end-of-stream record and the early bytes (which the
// destination may drop for the source to send again) were never sent
// again: the service read nothing at all, or an integrity failure
// ("circuit ended without its end-of-stream record"). Now Close waits
// for the handshake, at most a second.
func TestEarlyNoResumeWriteThenCloseDelivers(t *testing.T) {
	c, got := earlyPair(t)
	for i := 0; i < 3; i++ {
		conn, err := c.nodes["a"].DialWith(ctxT(t, 5*time.Second), "b", "sink", DialOptions{Early: true, NoResume: true})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := conn.Write([]byte("hello")); n != 5 || err != nil {
			t.Fatalf("circuit %d: write: %d, %v", i, n, err)
		}
		if err := conn.Close(); err != nil {
			t.Fatalf("circuit %d: close: %v", i, err)
		}
		select {
		case r := <-got:
			if r.data != "hello" || r.err != nil {
				t.Fatalf("circuit %d: the service read %q, %v; want \"hello\" and a clean end", i, r.data, r.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("circuit %d: written and closed without error, but the service saw nothing in 5s", i)
		}
	}
}

// TestEarlyNoResumeFirstWriteReachesService: a user opens an early
// circuit without resumption, writes its first bytes, and waits for the
// service to act on them before reading (a client that sends and waits,
// or nettest's MakePipe, which Accepts after the first Write). Within DefaultStrikeWindow (30 s) of its start the
// destination drops the early bytes and waits for the source to send
// them again after the handshake; before, the source ran the handshake
// only at its next Read or Write, so the service's Accept did not return
// for as long as the caller did nothing more (with resumption, the
// default, or without end-to-end security it was accepted at once). Now
// the handshake starts as the first flight leaves.
func TestEarlyNoResumeFirstWriteReachesService(t *testing.T) {
	c, _ := earlyPair(t)
	lis, err := c.nodes["b"].Listen("pipe")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	for i := 0; i < 3; i++ {
		conn, err := c.nodes["a"].DialWith(ctxT(t, 5*time.Second), "b", "pipe", DialOptions{Early: true, NoResume: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte{byte(i)}); err != nil {
			t.Fatalf("circuit %d: write: %v", i, err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			s, err := lis.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- s
		}()
		select {
		case s := <-accepted:
			if s == nil {
				t.Fatalf("circuit %d: accept failed", i)
			}
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 1)
			if _, err := io.ReadFull(s, b); err != nil || b[0] != byte(i) {
				t.Fatalf("circuit %d: the service read %v, %v", i, b, err)
			}
			s.Close()
		case <-time.After(5 * time.Second):
			t.Fatalf("circuit %d: first bytes written, but the service had not accepted the circuit after 5s", i)
		}
	}
}
