package node

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestRelayBoundsStuckCircuits: a relay ends a circuit whose far reader
// stopped reading, and one left half-closed and silent, once the bound
// runs out, with the close code CloseTimeout at the caller.
func TestRelayBoundsStuckCircuits(t *testing.T) {
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.RelayStall = 300 * time.Millisecond
		cfg.Limits.RelayHalfClosed = 300 * time.Millisecond
	}
	c.build("a-r", "r-d")
	c.waitRoute("a", "d", 2)
	hold := make(chan struct{})
	defer close(hold)
	serve(t, c.nodes["d"], "sink-never", func(io.ReadWriteCloser) { <-hold })
	serve(t, c.nodes["d"], "read-then-hold", func(conn io.ReadWriteCloser) {
		io.Copy(io.Discard, conn)
		<-hold
	})
	wantTimeout := func(what string, err error) {
		t.Helper()
		var re *links.StreamResetError
		if !errors.As(err, &re) || circuit.CloseCode(re.Code).Reason() != circuit.CloseTimeout {
			t.Fatalf("%s: %v, want a reset with code %d (%s)", what, err, circuit.CloseTimeout, circuit.CloseName(circuit.CloseTimeout))
		}
	}

	// A reader that never reads: the writer fills the windows, the relay's
	// write stalls, the relay resets the circuit.
	stalled, err := c.nodes["a"].DialWith(ctxT(t, 10*time.Second), "d", "sink-never", DialOptions{NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.SetDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 64<<10)
	for err == nil {
		_, err = stalled.Write(buf)
	}
	wantTimeout("writing to a reader that stopped", err)

	// Half-closed by the caller, the other direction silent.
	half, err := c.nodes["a"].DialWith(ctxT(t, 10*time.Second), "d", "read-then-hold", DialOptions{NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	half.SetDeadline(time.Now().Add(time.Minute))
	if _, err := half.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	half.(Conn).CloseWrite()
	_, err = io.ReadAll(half)
	wantTimeout("reading a half-closed circuit left silent", err)
}
