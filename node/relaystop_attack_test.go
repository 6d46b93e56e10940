package node

import (
	"errors"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackSilentNextHopKeepsClosedCircuitsCounted: n, a compromised
// relay linked to the honest relay r, carries nothing further: here it
// gives r's link no connection credit (it opens circuits to r's echo
// service, writes into them and never reads the echoes, its own reclaim
// turned off by a ReaderStall of an hour), so nothing r forwards to n goes
// on, and nothing comes back. h, an honest neighbour of r, opens early
// circuits to d, which lies behind n (h-r-n-d), and closes each after 3 s
// without an answer (FIN and stop-sending). r's splice of each read h's
// FIN, but its direction from n waited for data that never came and never
// saw h's stop: the circuit stayed at r, counted against h, until the
// half-closed bound (Limits.RelayHalfClosed, 2 min). With r's
// MaxCircuitsPerSource at 4, after four such circuits r refused h's
// circuit to x, r's other neighbour (h-r-x, not through n), `overloaded`:
// a relay on one path made the honest relay before it refuse the source's
// circuits on every other path. Now a stop-sending from h ends the
// splice's direction toward h at once, and the circuit with it.
func TestAttackSilentNextHopKeepsClosedCircuitsCounted(t *testing.T) {
	t.Parallel()
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "r":
			cfg.Limits.MaxCircuitsPerSource = 4
		case "n":
			cfg.Limits.StreamWindow = 64 << 10
			cfg.Limits.LinkWindow = 256 << 10
			cfg.Limits.ReaderStall = time.Hour
		}
	}
	c.build("h-r", "r-n", "n-d", "r-x")
	c.waitRoute("h", "d", 3)
	c.waitRoute("h", "x", 2)

	// Before the attack, h reaches x through r.
	pre, err := c.nodes["h"].DialWith(ctxT(t, 10*time.Second), "x", EchoService, DialOptions{NoResume: true})
	if err != nil {
		t.Fatalf("h's circuit to x before the attack: %v", err)
	}
	echoOnce(t, pre, "before")
	pre.Close()

	// n shuts r's credit on their link: echoes it never reads.
	n := c.nodes["n"]
	chunk := make([]byte, 64<<10)
	for i := range 4 { // r's per-source limit
		conn, err := n.DialWith(ctxT(t, 10*time.Second), "r", EchoService, DialOptions{NoResume: true})
		if err != nil {
			t.Fatalf("n's circuit %d to r: %v", i, err)
		}
		defer conn.Close()
		go func() { // the echo fills r's link to n; never read
			for {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(time.Second)

	// h's early circuits to d through r and n, each given up after 3 s.
	h := c.nodes["h"]
	early := make([]byte, 12<<10)
	for i := range 4 {
		conn, err := h.DialWith(ctxT(t, 10*time.Second), "d", EchoService, DialOptions{Early: true, NoResume: true})
		if err != nil {
			t.Logf("h's early circuit %d to d: %v", i, err)
			continue
		}
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		_, werr := conn.Write(early)
		buf := make([]byte, 1)
		_, rerr := conn.Read(buf)
		t.Logf("h's early circuit %d to d: write %v, read %v", i, werr, rerr)
		conn.Close()
	}
	time.Sleep(time.Second)

	// h's circuit to x does not cross n.
	conn, err := h.DialWith(ctxT(t, 10*time.Second), "x", EchoService, DialOptions{NoResume: true})
	if err != nil {
		if errors.Is(err, circuit.ErrOverloaded) {
			t.Fatalf("h's circuit to x, not through n, refused after n withheld credit from r: %v", err)
		}
		t.Fatalf("h's circuit to x: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatalf("h's circuit to x: write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := conn.Read(buf); err != nil {
		t.Fatalf("h's circuit to x: read: %v", err)
	}
}
