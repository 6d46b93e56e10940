package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// junkServices are service names a peer may write into an open header
// that no honest Listen publishes: terminal escapes, a NUL, a right-to-
// left override, a space, 255 bytes.
var junkServices = []string{
	"\x1b[2J\x1b[1;31msink\x1b[0m",
	"sink\x00",
	"\u202ekins",
	"sink now",
	strings.Repeat("s", 255),
}

// TestAttackServiceNamesWithEscapes: m, a node with a valid certificate,
// opens circuits to x whose service holds terminal escapes, control
// bytes, a direction override, a space or 255 bytes: on its link to x,
// and through r, an honest relay. Before, r relayed them, and x started
// its accept span (and r its relay span) with the name as
// circuitmesh.service, one value per name m invents, and refused them
// "no such service" with the name in the reason. Now the first node that
// reads the header (x directly, r through it) refuses it as malformed,
// code Policy, the reason saying the service name is invalid, before any
// span takes it; an honest circuit still passes, and Listen refuses such
// a name with ErrInvalidService.
func TestAttackServiceNamesWithEscapes(t *testing.T) {
	c, rec := tracedCluster(t)
	c.tweak = func(cfg *Config) {
		if cfg.Name == "x" {
			cfg.E2E = E2EOff
		}
	}
	c.build("m-x", "m-r", "r-x")
	c.waitRoute("m", "x", 1)
	c.waitRoute("r", "x", 1)
	m, x := c.nodes["m"], c.nodes["x"]
	sink, err := x.Listen("sink")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			conn, err := sink.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()

	for i, junk := range junkServices {
		for _, via := range []string{"x", "r"} {
			name := fmt.Sprintf("service %d via %s", i, via)
			o := &circuit.Open{Dest: "x", Source: "m", Service: junk, HopLimit: 15}
			s, err := openClearByHand(ctxT(t, 10*time.Second), m.link(via), o)
			if s != nil {
				s.Reset(circuit.CloseCancelled)
			}
			switch {
			case err == nil:
				t.Errorf("%s: x accepted it", name)
			case !strings.Contains(err.Error(), "refused: "+circuit.Policy.String()+": ") ||
				!strings.Contains(err.Error(), "invalid service name"):
				t.Errorf("%s: %.200q, want a policy refusal saying the service name is invalid", name, err)
			}
		}
		if l, err := x.Listen(junk); !errors.Is(err, ErrInvalidService) || strings.ContainsFunc(fmt.Sprint(err), func(r rune) bool { return !unicode.IsPrint(r) }) {
			if l != nil {
				l.Close()
			}
			t.Errorf("Listen(%.40q): %q, want ErrInvalidService, printable", junk, fmt.Sprint(err))
		}
	}

	honest, err := m.Dial(ctxT(t, 10*time.Second), "x", "sink")
	if err != nil {
		t.Fatalf("m's honest circuit to x: %v", err)
	}
	honest.Close()

	for _, s := range rec.Started() {
		if v := spanAttr(s, attrService).AsString(); slices.Contains(junkServices, v) {
			t.Errorf("span %q at %s has %s=%.40q", s.Name(), spanAttr(s, attrNode).AsString(), attrService, v)
		}
	}
}
