package node

import (
	"testing"
)

// deniedLogCircuits is how many circuits the source has denied after
// their handshake: under the relay's budget of full first messages it
// relays to one neighbour (RelayFullHandshakesPerLink, burst 32).
const deniedLogCircuits = 24

// TestAttackLateDenialsFloodTheLog: b opens deniedLogCircuits circuits to
// d's ssh, which d's policy denies b, each on what d takes for a first
// contact: d is made to forget b's verified certificate and key before
// each, as a full cache or a reload would, so d decides each only after
// the full handshake authenticated b and closes it. Before, d logged a
// line per circuit so closed. Now d writes at most one such line per
// source a minute, with its count, and still denies every circuit.
func TestAttackLateDenialsFloodTheLog(t *testing.T) {
	c, logs := policyMesh(t, map[string]string{"d": destPolicy})
	d, b := c.node("d"), c.node("b")
	for range deniedLogCircuits {
		d.router.cert.mu.Lock()
		delete(d.router.cert.certOf, "b")
		d.router.cert.mu.Unlock()
		d.keyBook.forget("b")
		b.keyBook.forget("d")
		err := roundTrip(t, b, "d", "ssh", []byte("x"))
		wantRefused(t, "b dials d/ssh on what d takes for a first contact", err, "d", "default deny")
	}
	wantOneLogLine(t, "d", logs["d"].String(), "closed a circuit its authenticated source may not open", deniedLogCircuits,
		"circuits of one source denied after their handshake", "")
	if got := d.limits.dialDenied.Load(); got != deniedLogCircuits {
		t.Fatalf("d counted %d circuits denied after their handshake, want %d", got, deniedLogCircuits)
	}
}
