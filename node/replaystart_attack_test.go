package node

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackReplayedFirstFlightNearStartReachesNoService: m, a relay that
// recorded a's one-message first flight to d (early data included),
// replays it to d within d's replay window of its start, which the
// process before d's may have taken. d takes the handshake but not the
// early data (the source keeps it and sends it again), and a replayer,
// without the first message's ephemeral key, cannot send it. Before, d
// still handed its service the replayed circuit, accepted from a and
// carrying nothing, which held one of a's circuits at d while it lasted;
// now d waits for the data a would send again, which never comes, resets
// the stream, and its service gets nothing.
func TestAttackReplayedFirstFlightNearStartReachesNoService(t *testing.T) {
	t.Parallel()
	c := newCluster(t, true)
	c.build("a-d", "m-d")
	c.waitRoute("m", "d", 1)
	a, d, m := c.nodes["a"], c.nodes["d"], c.nodes["m"]
	lis, err := d.Listen("svc")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := lis.Accept(); err == nil {
			accepted <- conn
		}
	}()
	t.Cleanup(func() { lis.Close() })

	// The flight a makes for d (its keys, d's key record, fresh: a
	// one-message handshake with early data, from a source that keeps
	// that data), as m would have recorded it, replayed on m's link.
	rec := d.seal.Load().Record()
	o := &circuit.Open{Dest: "d", Source: "a", Service: "svc", HopLimit: 16, Hop: 1, Path: []string{"m"}, Flags: circuit.FlagResendsEarly}
	s, code, err := openByHandWith(ctxT(t, patience), a, m.link("d"), o, &rec, true, []byte("a's early bytes"))
	if s != nil {
		defer s.Reset(circuit.CloseCancelled)
	}
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if code != circuit.Accepted {
		t.Fatalf("d answered the replayed first message %v, want its handshake taken (accepted)", code)
	}
	if n := d.earlyDropped.Load(); n != 1 {
		t.Fatalf("d dropped the early data of %d opens, want 1 (the test runs within d's replay window of its start)", n)
	}
	ended := make(chan error, 1)
	go func() {
		s.SetReadDeadline(time.Now().Add(patience))
		_, err := io.Copy(io.Discard, s) // d's reply, then d's reset
		ended <- err
	}()
	select {
	case conn := <-accepted:
		conn.Close()
		t.Fatalf("d's service accepted the replayed circuit from %v", conn.RemoteAddr())
	case err := <-ended:
		if err == nil || isTimeout(err) {
			t.Fatalf("the replayed circuit at d: %v; want d to reset it", err)
		}
		t.Logf("d reset the replayed circuit: %v", err)
	}
	// a's own circuits to d still work.
	if err := roundTrip(t, a, "d", EchoService, []byte("x")); err != nil {
		t.Fatal(err)
	}
}
