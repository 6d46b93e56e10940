package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// TestAttackForgedResumesNotCountedAsResendRefusals: h's budget of bytes
// d sends again for its resumes is in debt, as after resumes of h's that
// had d send its downloads again. m, a router with a valid certificate
// linked to d, sends d resume opens claiming to relay them for h (hop 1,
// path m), with first messages made with m's keys: full, one-message, and
// resumed with m's own session. None is taken, and d's
// circuitmesh_resume_resend_refused_total does not move for them: it
// counts the resume opens refused for the budget of a source a handshake
// proved. Then h's own resume open, a resumed handshake, is refused
// overloaded for its budget and counted. Counted by the source an open
// claims, before, each of m's forged opens moved the counter.
func TestAttackForgedResumesNotCountedAsResendRefusals(t *testing.T) {
	const forged = 8 // of each first message
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.ResumeBufferPerSource = MinResumeBuffer
		cfg.Limits.ResumeResendPerSource = 1 << 10 // a debt of MinResumeBuffer lasts the test
	}
	c.build("h-d", "m-d")
	c.waitRoute("h", "d", 1)
	c.waitRoute("m", "d", 1)
	h, m, d := c.nodes["h"], c.nodes["m"], c.nodes["d"]
	// h and m learn d's key and get session tickets, as any peer of d.
	for range 2 {
		for _, n := range []*Node{h, m} {
			if err := roundTrip(t, n, "d", EchoService, []byte("warm")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What the resume table draws when resumes of h's, proven by their
	// handshakes, have d send twice h's bucket again.
	acct := d.rbudget.open("h")
	acct.Resend(2 * MinResumeBuffer)
	acct.close()
	const refusedM = "circuitmesh_resume_resend_refused_total"
	if got := metricValue(t, d, refusedM, "", ""); got != 0 {
		t.Fatalf("d's %s is %v before any resume open, want 0", refusedM, got)
	}

	rec := d.seal.Load().Record()
	var wrong []string
	for _, first := range []struct {
		name  string
		rec   *seal.KeyRecord
		fresh bool
		want  circuit.Code
	}{
		// Refused on the claim, before any cryptography.
		{"full", nil, true, circuit.Overloaded},
		// The handshake proves m, not h.
		{"one-message", &rec, true, circuit.Policy},
		{"resumed (m's session)", &rec, false, circuit.Policy},
	} {
		var code circuit.Code
		for i := range forged {
			o := &circuit.Open{Dest: "d", Source: "h", Service: EchoService, Hop: 1, HopLimit: 15, Path: []string{"m"},
				Flags: circuit.FlagResume}
			s, c, err := openByHandWith(ctxT(t, patience), m, m.link("d"), o, first.rec, first.fresh, nil)
			if code = c; s != nil {
				s.Reset(circuit.CloseCancelled)
			}
			if err != nil {
				t.Fatalf("m's forged resume open %d (%s first message): %v", i, first.name, err)
			}
			if code == circuit.Accepted {
				t.Fatalf("d took m's forged resume open %d for h (%s first message)", i, first.name)
			}
		}
		if code != first.want {
			wrong = append(wrong, fmt.Sprintf("%s first message: refused %v, want %v", first.name, code, first.want))
		}
		t.Logf("m's %d forged resume opens for h with a %s first message: the last refused %v", forged, first.name, code)
	}
	if got := metricValue(t, d, refusedM, "", ""); got != 0 {
		t.Errorf("after m's %d resume opens forging h as their source, d's %s is %v, want 0", 3*forged, refusedM, got)
	}
	if len(wrong) > 0 {
		t.Errorf("m's forged resume opens: %q", wrong)
	}

	// h's own resume open, proven by its session: refused for its debt.
	_, err := openResumableTo(t, h, "d", EchoService, circuit.FlagResume)
	if !errors.Is(err, circuit.ErrOverloaded) {
		t.Fatalf("h's resume open while its budget is in debt: %v, want ErrOverloaded", err)
	}
	if got := metricValue(t, d, refusedM, "", ""); got != 1 {
		t.Fatalf("after h's own resume open refused for its budget, d's %s is %v, want 1: %v", refusedM, got, err)
	}
	t.Logf("h's own resume open: %v", err)
}
