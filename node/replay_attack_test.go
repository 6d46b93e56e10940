package node

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// TestAttackReplayRegisterFill: m, a member with a valid certificate,
// sends d one-message (IK) opens as fast as d answers them, each a fresh
// first message that d's replay register must remember for 30 s. Without
// a per-source share m fills the register alone, and from then on d
// answers every one-message or resumed open, whoever sends it, with
// retry: a's early circuits to d (what Forward and `circuitmesh dial`
// open) fail on their first Read. With the per-source share m is refused
// once the register is half full, and a, under its share, still gets in:
// its early circuits carry their bytes.
func TestAttackReplayRegisterFill(t *testing.T) {
	const register = 1024
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) { cfg.hooks = &hooks{strikes: register} }
	c.build("a-d", "m-d")
	c.waitRoute("a", "d", 1)
	a, d, m := c.nodes["a"], c.nodes["d"], c.nodes["m"]
	// a knows d's key (a full handshake) and holds a session ticket (a
	// one-message open): its next opens are resumed, as in a warm mesh.
	for i := 0; i < 2; i++ {
		if err := roundTrip(t, a, "d", EchoService, []byte("warm")); err != nil {
			t.Fatalf("warm-up circuit %d: %v", i, err)
		}
	}

	rec := d.seal.Load().Record()
	l := m.link("d")
	accepted, retried := 0, 0
	for i := 0; i < register+register/4; i++ {
		s, err := l.OpenStream(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		o := &circuit.Open{Dest: "d", Source: "m", Service: EchoService, HopLimit: 16, Flags: circuit.FlagEarly | circuit.FlagSealed}
		b, err := o.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		ini, err := m.seal.Load().Initiate(seal.Prologue("d", "m", EchoService), "d", &rec)
		if err != nil {
			t.Fatal(err)
		}
		if b, err = ini.First(b, nil, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
		res, err := circuit.ReadResult(s, 0)
		s.Reset(circuit.CloseCancelled)
		if err != nil {
			t.Fatalf("m's open %d: %v", i, err)
		}
		switch res.Code {
		case circuit.Accepted:
			accepted++
		case circuit.Retry:
			retried++
		default:
			t.Fatalf("m's open %d: %v", i, res)
		}
	}
	t.Logf("m's first messages: %d remembered by d, %d refused with retry", accepted, retried)
	if accepted > register/2 {
		t.Errorf("d remembered %d first messages of m, want at most %d (half the register)", accepted, register/2)
	}

	for i := 0; i < register/64-2; i++ {
		conn, err := a.DialWith(ctxT(t, 10*time.Second), "d", EchoService, DialOptions{Early: true})
		if err != nil {
			t.Fatalf("a's early circuit %d: %v", i, err)
		}
		msg := []byte("early bytes of a")
		if _, err := conn.Write(msg); err != nil {
			conn.Close()
			t.Fatalf("a's early circuit %d during m's flood: write: %v", i, err)
		}
		conn.CloseWrite()
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("a's early circuit %d during m's flood: read %q, %v", i, got, err)
		}
	}
}
