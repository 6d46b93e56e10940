package node

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// A router m with a valid certificate that forwards an open with SEALED
// cleared (a circuit it claims to relay for a, as a relay that strips the
// flag would, or one of its own) to a destination with end-to-end security
// on is refused with code policy and the reason, and the destination's
// service never gets a circuit: no clear payload reaches it, whatever the
// open claims. (circuit's TestAttackRelayStripsSealedAtAClearDestination
// covers a destination running with it off.)
func TestAttackUnsealedOpenRefusedBySealedDestination(t *testing.T) {
	c, _ := maliciousLine(t, &spy{})
	got := make(chan string, 4)
	serve(t, c.nodes["b"], "svc", func(conn io.ReadWriteCloser) {
		b := make([]byte, 64)
		n, _ := conn.Read(b)
		got <- string(b[:n])
	})
	m := c.nodes["m"]
	for _, o := range []*circuit.Open{
		{Dest: "b", Source: "a", Service: "svc", Hop: 1, HopLimit: 15, Path: []string{"m"}, Flags: circuit.FlagEarly},
		{Dest: "b", Source: "m", Service: "svc", HopLimit: 15, Flags: circuit.FlagEarly},
	} {
		s, err := m.link("b").OpenStream(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := o.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(append(hdr, "clear payload"...)); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(patience))
		res, err := circuit.ReadResult(s, 0)
		s.Reset(circuit.CloseCancelled)
		if err != nil {
			t.Fatalf("open claiming %s: %v", o.Source, err)
		}
		if res.Code != circuit.Policy || !strings.Contains(res.Reason, "requires end-to-end security") {
			t.Fatalf("unsealed open claiming %s: result %v (%s), want policy, requires end-to-end security", o.Source, res.Code, res.Reason)
		}
	}
	// An honest sealed circuit through m still reaches the service, so
	// the service was there to be reached.
	conn, err := c.nodes["a"].Dial(ctxT(t, patience), "b", "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("sealed")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "sealed" {
			t.Fatalf("the service got %q before the sealed circuit's data", s)
		}
	case <-time.After(patience):
		t.Fatal("the sealed circuit's data did not reach the service")
	}
}
