package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// fwdPair starts two linked nodes a and b and waits until each reaches the
// other. configA, if given, adjusts a's configuration.
func fwdPair(t *testing.T, configA ...func(*Config)) (a, b *Node) {
	t.Helper()
	ca, err := identity.NewCA("fwd", 0)
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *Node {
		id, err := ca.Issue(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Identity: id, GracePeriod: 100 * time.Millisecond}
		if name == "a" {
			for _, f := range configA {
				f(&cfg)
			}
		}
		n, err := New(cfg)
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
	fwdWaitReachable(t, a, "b")
	fwdWaitReachable(t, b, "a")
	return a, b
}

func fwdWaitReachable(t *testing.T, n *Node, peer string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range n.Peers() {
			if p.Name == peer && p.Reachable {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never reached %s; peers: %+v", n.Name(), peer, n.Peers())
}

// fwdEchoServer is a TCP server that echoes until the client half-closes,
// then closes. It returns its address.
func fwdEchoServer(t *testing.T) string {
	return tcpServer(t, func(c net.Conn) { io.Copy(c, c) })
}

// tcpServer serves every connection on a loopback port with handle (then
// closes it) until the test ends, and returns its address.
func tcpServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// fwdEchoForward starts fwdPair, exposes a TCP echo server at b as
// "tcp-echo" and returns the address of a's forward to it.
func fwdEchoForward(t *testing.T, configA ...func(*Config)) net.Addr {
	t.Helper()
	a, b := fwdPair(t, configA...)
	stopExpose, err := b.Expose("tcp-echo", fwdEchoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopExpose() })
	addr, stopForward, err := a.Forward("127.0.0.1:0", "b", "tcp-echo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopForward() })
	return addr
}

// fwdRoundTrip writes payload on a TCP connection to addr, half-closes and
// reads everything back.
func fwdRoundTrip(t *testing.T, addr string, payload []byte) ([]byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(c)
	if werr := <-errc; werr != nil && err == nil {
		err = werr
	}
	return got, err
}

func TestExposeForwardCarriesBytesBothWaysWithHalfClose(t *testing.T) {
	addr := fwdEchoForward(t)

	payload := make([]byte, 1<<20)
	rand.Read(payload)
	got, err := fwdRoundTrip(t, addr.String(), payload)
	if err != nil {
		t.Fatalf("round trip through the mesh: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want the %d sent, identical", len(got), len(payload))
	}
	// A second connection works too: each gets its own circuit.
	if got, err := fwdRoundTrip(t, addr.String(), []byte("again")); err != nil || string(got) != "again" {
		t.Fatalf("second connection: %q, %v", got, err)
	}
}

func TestForwardToMissingServiceClosesTheConnection(t *testing.T) {
	a, _ := fwdPair(t)
	addr, stop, err := a.Forward("127.0.0.1:0", "b", "nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	got, err := fwdRoundTrip(t, addr.String(), []byte("hello"))
	if len(got) != 0 {
		t.Fatalf("read %q from a forward to a missing service", got)
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("connection hung instead of closing: %v", err)
	}
}

func TestStopEndsListenersAndConnections(t *testing.T) {
	a, b := fwdPair(t)
	stopExpose, err := b.Expose("tcp-echo", fwdEchoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	addr, stopForward, err := a.Forward("127.0.0.1:0", "b", "tcp-echo")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("echo before stop: %v", err)
	}

	done := make(chan error, 2)
	go func() { done <- stopForward() }()
	go func() { done <- stopExpose() }()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("stop: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("stop did not return: a goroutine outlived it")
		}
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("open connection survived stop: %v", err)
	}
	if c2, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		c2.Close()
		t.Fatal("forward listener still accepts after stop")
	}
	if got := b.Services(); len(got) > 0 {
		for _, s := range got {
			if s == "tcp-echo" {
				t.Fatalf("service still published after stop: %v", got)
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestNodeCloseEndsForwards(t *testing.T) {
	a, _ := fwdPair(t)
	addr, stop, err := a.Forward("127.0.0.1:0", "b", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	a.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err != nil {
			return // the listener is gone
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("forward listener still accepts after the node closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A local client of a forward port opens circuits as the node. Each
// connection is one circuit counted against Limits.MaxCircuits: beyond it
// a connection is reset at once, the connections already open keep
// working, and a place freed is taken again.
func TestForwardConnectionsBoundedByCircuitLimit(t *testing.T) {
	const limit = 4
	addr := fwdEchoForward(t, func(c *Config) { c.Limits.MaxCircuits = limit })

	echo := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return echoMsg(c, msg)
	}
	// open connects and echoes msg. A connection the forward resets can
	// fail already in connect (ECONNRESET on loopback).
	open := func(msg string) (net.Conn, error) {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			return nil, err
		}
		if err := echo(c, msg); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	var held []net.Conn
	for i := range limit {
		c, err := open(fmt.Sprint("held ", i))
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, limit, err)
		}
		defer c.Close()
		held = append(held, c)
	}

	if c, err := open("one too many"); err == nil || isTimeout(err) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("connection beyond Limits.MaxCircuits (%d): %v, want it reset at once", limit, err)
	}
	for i, c := range held {
		if err := echo(c, "still here"); err != nil {
			t.Fatalf("held connection %d after the refusal: %v", i+1, err)
		}
	}

	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := open("freed place")
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a place freed by a closed connection was never taken again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
