package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestPolicyReloadDenialReadsAsRefusedByPolicyAtBothEnds: SetPolicy
// says a circuit the new policy no longer allows is reset with
// CloseDenied, "which both ends see as an error matching
// circuit.ErrRefusedByPolicy". At the destination the circuit is the
// service's own (it accepted it): its blocked Read and its later Write
// must report the policy's reset, not net.ErrClosed, the error of a conn
// the service closed itself (a service that treats net.ErrClosed as its
// own Close could not tell that the policy revoked the circuit). Checked
// for a resumable circuit (the default) and a plain one (NoResume).
func TestPolicyReloadDenialReadsAsRefusedByPolicyAtBothEnds(t *testing.T) {
	for _, noResume := range []bool{false, true} {
		t.Run(map[bool]string{false: "resumable", true: "noresume"}[noResume], func(t *testing.T) {
			testPolicyReloadDenial(t, noResume)
		})
	}
}

func testPolicyReloadDenial(t *testing.T, noResume bool) {
	c, _ := policyMesh(t, map[string]string{"d": "allow dial from=group:ops service=vault\n"})
	d := c.node("d")
	src, dst := vaultCircuit(t, c, DialOptions{NoResume: noResume})
	b := make([]byte, 1)
	readErr := make(chan error, 1)
	go func() {
		_, err := dst.Read(b) // blocked until the circuit ends
		readErr <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if n := d.SetPolicy(mustPolicy(t, "allow dial from=b service=vault\n")); n != 1 {
		t.Fatalf("d's new policy closed %d circuits, want 1", n)
	}
	var derr error
	select {
	case derr = <-readErr:
	case <-time.After(20 * time.Second):
		t.Fatal("d's service's Read did not end after the policy denied its circuit")
	}
	src.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, serr := src.Read(b)
	t.Logf("source (a) Read: %v", serr)
	t.Logf("destination (d's service) Read: %v", derr)
	if !errors.Is(serr, circuit.ErrRefusedByPolicy) {
		t.Errorf("a's Read: %v, want an error matching circuit.ErrRefusedByPolicy", serr)
	}
	if !errors.Is(derr, circuit.ErrRefusedByPolicy) {
		t.Errorf("d's service's Read after the new policy denied its circuit: %v (net.ErrClosed: %v), want an error matching circuit.ErrRefusedByPolicy as SetPolicy documents for both ends",
			derr, errors.Is(derr, net.ErrClosed))
	}
	if _, werr := dst.Write([]byte("y")); !errors.Is(werr, circuit.ErrRefusedByPolicy) {
		t.Errorf("d's service's Write after the denial: %v, want circuit.ErrRefusedByPolicy", werr)
	}
}

// vaultCircuit opens a circuit from a to d's service vault with opt and
// returns both ends once d's service read a's first byte.
func vaultCircuit(t *testing.T, c *cluster, opt DialOptions) (src Conn, dst net.Conn) {
	t.Helper()
	ln, err := c.node("d").Listen("vault")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			accepted <- conn
		}
	}()
	src, err = c.node("a").DialWith(ctxT(t, 30*time.Second), "d", "vault", opt)
	if err != nil {
		t.Fatalf("a dials d/vault: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	if _, err := src.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case dst = <-accepted:
	case <-time.After(20 * time.Second):
		t.Fatal("d's service never got a's circuit")
	}
	t.Cleanup(func() { dst.Close() })
	if _, err := dst.Read(make([]byte, 1)); err != nil {
		t.Fatalf("d's service reads a's byte: %v", err)
	}
	return src, dst
}
