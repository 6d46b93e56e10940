package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestPolicyReloadEndsCircuitWaitingForResume: SetPolicy ends the
// circuits the new policy no longer allows, "which both ends see as an
// error matching circuit.ErrRefusedByPolicy". A resumable circuit whose
// path was lost (its relay crashed) and that waits for its source to
// resume it is still the service's circuit: a policy that denies its
// source must end it too, not leave it open until the resume timeout.
func TestPolicyReloadEndsCircuitWaitingForResume(t *testing.T) {
	sockets := map[string]*net.UDPConn{}
	c, _ := policyMesh(t, map[string]string{"d": "allow dial from=group:ops service=vault\n"}, func(cfg *Config) {
		cfg.ResumeTimeout = 5 * time.Minute // nothing ends on its own meanwhile
		if cfg.Name == "r" {
			ownSocket(t, sockets, cfg)
		}
	})
	d := c.node("d")
	_, dst := vaultCircuit(t, c, DialOptions{})
	b := make([]byte, 1)
	rc, ok := dst.(*resumableConn)
	if !ok {
		t.Fatalf("d's end is a %T, want a resumable circuit", dst)
	}
	sockets["r"].Close() // r's process dies: the only path is lost
	waitFor(t, "d's end of the circuit to wait for a resume", 30*time.Second, func() bool { return rc.Current() == nil })
	readErr := make(chan error, 1)
	go func() {
		_, err := dst.Read(b)
		readErr <- err
	}()
	n := d.SetPolicy(mustPolicy(t, "allow dial from=b service=vault\n"))
	select {
	case err := <-readErr:
		if !errors.Is(err, circuit.ErrRefusedByPolicy) {
			t.Fatalf("d's service's Read after the new policy denied its waiting circuit: %v, want circuit.ErrRefusedByPolicy", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("d's service's Read still blocked 20 s after a policy denying its source (SetPolicy closed %d circuits): the circuit waits for a resume until the resume timeout", n)
	}
	if n != 1 {
		t.Errorf("d's new policy closed %d circuits, want 1", n)
	}
}
