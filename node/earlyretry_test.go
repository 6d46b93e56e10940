package node

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// An early circuit whose first flight the destination refuses with a
// retry (here its replay register: the source holds its share of a
// register half full) opens again with the next handshake down and
// carries the same first bytes: the application sees its echo, not the
// refusal.
func TestEarlyRetryReopensWithFirstBytes(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "b" {
			cfg.hooks = &hooks{strikes: 2} // half full, and a's share taken, after one early open
		}
	}
	c.build("a-b")
	c.tweak = nil
	a := c.nodes["a"]
	c.waitRoute("a", "b", 1)
	serve(t, c.nodes["b"], "svc", echoHandler)
	// The first learns b's key (full handshake, no early data); the
	// second is early with it and fills a's share of b's register.
	if err := roundTrip(t, a, "b", "svc", []byte("warm")); err != nil {
		t.Fatal(err)
	}
	for i, msg := range [][]byte{[]byte("first"), bytes.Repeat([]byte("second"), 5000)} {
		conn, err := a.DialWith(ctxT(t, 10*time.Second), "b", "svc", DialOptions{Early: true})
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(msg); err != nil {
			t.Fatalf("early circuit %d: write: %v", i, err)
		}
		conn.CloseWrite()
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("early circuit %d: read %d bytes, %v; want the %d bytes written", i, len(got), err, len(msg))
		}
	}
}
