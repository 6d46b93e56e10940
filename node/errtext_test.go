package node

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestResetErrorNamesTheEndsOnce: the error a service's Read returns
// after the source reset a circuit names the operation and the ends once,
// and unwraps to the remote reset. Before, a resumable circuit (the
// default) wrapped its path's *net.OpError in another: "read circuitmesh
// b/svc->a/svc: read circuitmesh b/svc->a/svc: circuit reset by the
// path: cancelled".
func TestResetErrorNamesTheEndsOnce(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	for _, opt := range []DialOptions{{}, {NoResume: true}} {
		kind := map[bool]string{false: "resumable", true: "not resumable"}[opt.NoResume]
		lis, err := c.nodes["b"].Listen("svc")
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.nodes["a"].DialWith(ctxT(t, patience), "b", "svc", opt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		s, err := lis.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		d.(interface{ Reset(uint64) }).Reset(circuit.CloseCancelled)
		_ = s.SetReadDeadline(time.Now().Add(patience))
		_, err = s.Read(make([]byte, 8))
		var re *circuit.ResetError
		switch {
		case err == nil:
			t.Errorf("%s: Read after the source's reset succeeded", kind)
		case strings.Count(err.Error(), "read circuitmesh") != 1:
			t.Errorf("%s: the error names its op and ends %d times: %q", kind, strings.Count(err.Error(), "read circuitmesh"), err)
		case !errors.As(err, &re) || !re.Remote:
			t.Errorf("%s: %v does not unwrap to a remote *circuit.ResetError", kind, err)
		}
		_ = s.Close()
		_ = d.Close()
		_ = lis.Close()
	}
}
