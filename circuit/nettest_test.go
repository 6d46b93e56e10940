package circuit

import (
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

func makePipe(p *testPath, early bool) nettest.MakePipe {
	return func() (c1, c2 net.Conn, stop func(), err error) {
		c, err := p.connect(basicOpen(), early)
		if err != nil {
			return nil, nil, nil, err
		}
		return c.caller, c.dest, c.stop, nil
	}
}

// TestNettestDirect runs the standard net.Conn conformance suite over one
// QUIC stream pair.
func TestNettestDirect(t *testing.T) {
	nettest.TestConn(t, makePipe(newPath(t, 0, nil), false))
}

// TestNettestRelayed runs it through a relay: two QUIC stream pairs joined
// by Splice.
func TestNettestRelayed(t *testing.T) {
	nettest.TestConn(t, makePipe(newPath(t, 1, nil), false))
}

// TestNettestEarlyRelayed runs it through a relay with a DialEarly caller,
// whose first Read also consumes the result header.
func TestNettestEarlyRelayed(t *testing.T) {
	nettest.TestConn(t, makePipe(newPath(t, 1, nil), true))
}
