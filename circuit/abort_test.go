package circuit

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// TestAbortReportsTheReset: Abort resets the circuit as Reset does, but
// this end's pending and later Reads and Writes report that reset (a
// *net.OpError wrapping a *ResetError of this end, matching the reason's
// sentinel and links.ErrStreamReset) instead of net.ErrClosed: a node
// closing reports its circuits "shutting down" at its own end as at the
// other. Close afterwards says net.ErrClosed, and Abort after Close
// changes nothing.
func TestAbortReportsTheReset(t *testing.T) {
	c := mustConnect(t, newPath(t, 1, nil), basicOpen(), false)
	errc := make(chan error, 1)
	go func() {
		_, err := c.caller.Read(make([]byte, 8))
		errc <- err
	}()
	c.caller.Abort(CloseShuttingDown)
	var pending error
	select {
	case pending = <-errc:
	case <-time.After(20 * time.Second): // a loaded machine is slow, not stuck
		t.Fatal("Abort did not unblock a pending Read")
	}
	_, werr := c.caller.Write([]byte("x"))
	for op, err := range map[string]error{"pending Read": pending, "Write": werr} {
		var oe *net.OpError
		var re *ResetError
		if !errors.As(err, &oe) || !errors.As(err, &re) || re.Remote || !errors.Is(err, ErrShuttingDown) || !errors.Is(err, links.ErrStreamReset) {
			t.Errorf("%s after Abort: %v (%T), want a *net.OpError of this end's reset matching ErrShuttingDown", op, err, err)
		}
	}
	if _, err := c.dest.Read(make([]byte, 8)); !errors.Is(err, ErrShuttingDown) {
		t.Errorf("other end's Read: %v, want the reset matching ErrShuttingDown", err)
	}
	if err := c.caller.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Close after Abort: %v, want net.ErrClosed", err)
	}

	d := mustConnect(t, newPath(t, 0, nil), basicOpen(), false)
	d.caller.Close()
	d.caller.Abort(CloseShuttingDown)
	if _, err := d.caller.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) || errors.Is(err, ErrShuttingDown) {
		t.Errorf("Read after Close then Abort: %v, want net.ErrClosed", err)
	}
}
