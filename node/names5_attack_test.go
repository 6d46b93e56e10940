package node

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// inventedNames are names a relay may write into an open header that no
// certificate holds: terminal escapes, 255 bytes of junk, a capital.
var inventedNames = []string{
	"\x1b[2J\x1b[1;31mroot\x1b[0m",
	strings.Repeat("j", 255),
	"Admin",
}

// TestAttackRelayInventedNamesRefused: m, a router with a valid
// certificate, opens circuits by hand to x (clear, E2E off) and d
// (sealed), claiming to relay them, with names in the header no
// certificate can hold: as the claimed source, or as a relay before it on
// the path; each once on its link to the destination, once through r, an
// honest relay. Before, r relayed them, and x and d took them: x's service accepted circuits whose
// RemoteAddr and Path carried the escapes and the junk, x's backlog and d's
// per-source limits counted them under those names, and d accepted the
// sealed opens and started spans with them as circuitmesh.source, one
// label value per name m cares to invent. Now the first node that reads
// such a header refuses it with code Policy (a malformed header) before
// any of that, and an honest circuit from m still reaches x's service.
func TestAttackRelayInventedNamesRefused(t *testing.T) {
	c, rec := tracedCluster(t)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	xlog := c.captureLog("x")
	dlog := c.captureLog("d")
	c.build("m-x", "m-d", "m-r", "r-x", "r-d")
	c.waitRoute("m", "x", 1)
	c.waitRoute("m", "d", 1)
	c.waitRoute("r", "x", 1)
	c.waitRoute("r", "d", 1)
	m, x := c.nodes["m"], c.nodes["x"]
	sink, err := x.Listen("sink")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	conns := make(chan net.Conn, 32)
	go func() {
		for {
			conn, err := sink.Accept()
			if err != nil {
				close(conns)
				return
			}
			conns <- conn
		}
	}()

	type forged struct {
		name string
		dest string // x: clear, d: sealed
		o    circuit.Open
	}
	var opens []forged
	for i, junk := range inventedNames {
		for _, dest := range []string{"x", "d"} {
			service := "sink"
			if dest == "d" {
				service = EchoService
			}
			opens = append(opens,
				forged{fmt.Sprintf("name %d as source to %s", i, dest), dest, circuit.Open{Dest: dest, Source: junk, Service: service,
					Hop: 1, HopLimit: 15, Flags: circuit.FlagRecordPath, Path: []string{junk, "m"}}},
				forged{fmt.Sprintf("name %d as a relay to %s", i, dest), dest, circuit.Open{Dest: dest, Source: "m", Service: service,
					Hop: 2, HopLimit: 15, Flags: circuit.FlagRecordPath, Path: []string{"m", junk, "m"}}})
		}
	}
	for _, f := range opens {
		for _, via := range []string{f.dest, "r"} {
			checkInventedOpen(t, m, via, f.name+" via "+via, f.o)
		}
	}

	// An honest circuit from m, after the forged ones: x's service takes
	// circuits in order, so what it accepted before this one came from
	// the forged opens.
	honest, err := m.Dial(ctxT(t, 10*time.Second), "x", "sink")
	if err != nil {
		t.Fatalf("m's honest circuit to x: %v", err)
	}
	defer honest.Close()
	for conn := range conns {
		path := conn.(Conn).Path()
		conn.Close()
		if path == nil && conn.RemoteAddr().String() == "m/sink" {
			break
		}
		t.Errorf("x's service accepted a circuit from %.80q with path %.80q", conn.RemoteAddr().String(), path)
	}

	// No span at x or d names a source or destination that is not a node
	// name: each one invented would be another value of the attribute.
	for _, s := range rec.Started() {
		for _, kv := range s.Attributes() {
			if kv.Key != attrSource && kv.Key != attrDest {
				continue
			}
			if err := identity.ValidateName(kv.Value.AsString()); errors.Is(err, identity.ErrInvalidName) {
				t.Errorf("span %q has %s=%.40q", s.Name(), kv.Key, kv.Value.AsString())
			}
		}
	}
	for name, log := range map[string]string{"x": xlog.String(), "d": dlog.String()} {
		for _, junk := range inventedNames {
			if strings.Contains(log, junk) {
				t.Errorf("%s's log holds the invented name %.40q as it was sent", name, junk)
			}
		}
	}
}

// checkInventedOpen sends o on m's link to via (the destination, or a
// relay to it): a clear open to x, a sealed one to d. The test fails
// unless the first node to read it refuses it with code Policy, the
// clear refusal's reason saying the name is invalid.
func checkInventedOpen(t *testing.T, m *Node, via, name string, o circuit.Open) {
	t.Helper()
	var s links.Stream
	var code circuit.Code
	var err error
	if o.Dest == "x" {
		s, err = openClearByHand(ctxT(t, 10*time.Second), m.link(via), &o)
		switch {
		case err == nil:
			code = circuit.Accepted
		case strings.Contains(err.Error(), circuit.Policy.String()) && !strings.Contains(err.Error(), "invalid name"):
			t.Errorf("%s: %v, want a refusal saying the name is invalid", name, err)
		case strings.Contains(err.Error(), circuit.Policy.String()):
			code, err = circuit.Policy, nil
		}
	} else {
		s, code, err = openByHand(ctxT(t, 10*time.Second), m, m.link(via), &o, nil)
	}
	if s != nil {
		s.Reset(circuit.CloseCancelled)
	}
	switch {
	case err != nil:
		t.Errorf("%s: %v", name, err)
	case code == circuit.Accepted:
		t.Errorf("%s: %s accepted it", name, o.Dest)
	case code != circuit.Policy:
		t.Errorf("%s: refused with code %v, want %v", name, code, circuit.Policy)
	}
}
