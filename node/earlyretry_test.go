package node

import (
	"io"
	"testing"
	"time"
)

// An early circuit (the kind Forward opens) whose first flight the
// destination refuses with retry (here: the session it resumed belongs
// to keys the destination renewed) is opened again with the next
// handshake down, its first bytes sent again, and the caller sees only
// its answer.
func TestEarlyDialRefusedWithRetryOpensAgain(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a, b := c.nodes["a"], c.nodes["b"]
	early := func() (bool, error) {
		t.Helper()
		conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", EchoService, DialOptions{Early: true})
		if err != nil {
			return false, err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := echoMsg(conn, "early bytes"); err != nil {
			return false, err
		}
		// The service got the bytes once: nothing more comes back.
		if err := conn.CloseWrite(); err != nil {
			return false, err
		}
		if rest, err := io.ReadAll(conn); err != nil || len(rest) > 0 {
			t.Fatalf("after the echo: %q, %v; want a clean end", rest, err)
		}
		return resumed(conn), nil
	}
	for range 3 {
		if _, err := early(); err != nil {
			t.Fatal(err)
		}
	}
	if !a.seal.Load().Resumable("b") {
		t.Fatal("a holds no session with b")
	}
	id, err := c.ca.Issue("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetIdentity(id); err != nil {
		t.Fatal(err)
	}
	if r, err := early(); err != nil || r {
		t.Fatalf("early circuit after b renewed its keys: resumed %v, %v; want a new handshake and the echo", r, err)
	}
}

// A destination within its replay window of its start does not take the
// early data of a one-message open (the process before it may have taken
// that flight), and says so in its authenticated reply: the source sends
// the data again after the handshake, and the service gets it once.
func TestEarlyDataNearStartSentAgainOnce(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	a, b := c.nodes["a"], c.nodes["b"]
	// The first open learns b's key (full handshake, no ticket): the
	// early one is a one-message open carrying its data.
	if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
		t.Fatal(err)
	}
	conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", EchoService, DialOptions{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const msg = "early bytes near the start"
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != msg {
		t.Fatalf("echo %q, %v; want %q once", got, err, msg)
	}
	if n := b.earlyDropped.Load(); n != 1 {
		t.Fatalf("b dropped the early data of %d opens, want 1 (the test runs within b's replay window of its start)", n)
	}
	if v := metricValue(t, b, "circuitmesh_early_data_dropped_total", "", ""); v != 1 {
		t.Fatalf("circuitmesh_early_data_dropped_total = %v, want 1", v)
	}
}
