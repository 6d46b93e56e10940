package node

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestOwnCloseResetsCircuitsAsShuttingDown: the circuits a node's Close
// resets are reset "shutting down" for the other end, but their own
// end's Reads and Writes failed with net.ErrClosed, as after the
// application's Close, while a reset matches circuit.ErrShuttingDown
// wherever on the path it began. Now they fail with a *net.OpError
// wrapping a *circuit.ResetError that matches it, resumable circuit or
// not.
func TestOwnCloseResetsCircuitsAsShuttingDown(t *testing.T) {
	for _, noResume := range []bool{false, true} {
		c := newCluster(t, false)
		c.build("a-r", "r-b")
		c.waitRoute("a", "b", 2)
		lis, err := c.nodes["b"].Listen("pipe")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := c.nodes["a"].DialWith(ctxT(t, 5*time.Second), "b", "pipe", DialOptions{NoResume: noResume})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := lis.Accept()
		if err != nil {
			t.Fatal(err)
		}
		read := make(chan error, 1)
		go func() {
			_, err := conn.Read(make([]byte, 1))
			read <- err
		}()
		c.nodes["a"].Close()
		_, werr := conn.Write([]byte("x"))
		for op, err := range map[string]error{"read": <-read, "write": werr} {
			var oe *net.OpError
			var re *circuit.ResetError
			if !errors.Is(err, circuit.ErrShuttingDown) || !errors.As(err, &oe) || !errors.As(err, &re) || re.Remote {
				t.Errorf("noResume=%v: %s on a circuit its node's Close reset: %v (%T), want a *net.OpError of this end's reset matching circuit.ErrShuttingDown",
					noResume, op, err, err)
			}
			if !errors.Is(err, links.ErrStreamReset) {
				t.Errorf("noResume=%v: %s: %v does not match links.ErrStreamReset", noResume, op, err)
			}
		}
		if err := conn.Close(); !errors.Is(err, net.ErrClosed) && err != nil {
			t.Errorf("noResume=%v: Close after the node's: %v", noResume, err)
		}
		srv.Close()
		c.closeAll()
	}
}
