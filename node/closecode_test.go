package node

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestResetNamesTheHopThatBrokeTheCircuit: when the link beyond the second
// relay dies, the source's circuit ends with a reset that matches
// ErrLinkLost and names hop 2, although the source's own link is fine.
func TestResetNamesTheHopThatBrokeTheCircuit(t *testing.T) {
	c := newCluster(t, true)
	c.build("a-r1", "r1-r2", "r2-b")
	c.waitRoute("a", "b", 3)
	serve(t, c.nodes["b"], "hold", func(rw io.ReadWriteCloser) { io.Copy(io.Discard, rw) })
	conn, err := c.nodes["a"].DialWith(ctxT(t, 10*time.Second), "b", "hold", DialOptions{NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c.nodes["r2"].link("b").Close("test cuts r2-b")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var re *circuit.ResetError
	if !errors.As(err, &re) || !errors.Is(err, circuit.ErrLinkLost) {
		t.Fatalf("read after r2-b died: %v, want a reset matching ErrLinkLost", err)
	}
	if re.Code.Hop() != 2 || re.Code.Reason() != circuit.CloseLinkLost || !re.Remote {
		t.Fatalf("reset %+v (%v), want link lost at hop 2 from the path", re, re.Code)
	}
	if got := re.Error(); got != "circuit reset by the relay at hop 2: link lost" {
		t.Fatalf("error text %q", got)
	}
}
