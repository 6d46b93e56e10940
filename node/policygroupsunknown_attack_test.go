package node

import (
	"strings"
	"testing"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackUnsealedDialDenyByGroupWithGroupsUnknown: on a mesh without
// end-to-end security the destination decides dial rules on the source
// the header claims, with the groups of the certificate that attested its
// routes. When it holds no such groups (it dropped them: its table of
// them was full, or a reload changed the CA; or the source never
// announced its routes), a "deny dial from=group:..." must still deny,
// as the relay's rules do (TestRelayDenyByGroupSurvivesDroppedGroups):
// b, in group web, must not open d's ssh because d forgot b's groups.
func TestAttackUnsealedDialDenyByGroupWithGroupsUnknown(t *testing.T) {
	c, _ := policyMesh(t, map[string]string{"d": "deny dial from=group:web service=*\nallow dial from=* service=*\n"},
		func(cfg *Config) { cfg.E2E = E2EOff })
	msg := []byte("hello")
	d := c.node("d")
	wantRefused(t, "b (web) dials d/ssh", roundTrip(t, c.node("b"), "d", "ssh", msg), "d", "denied by the policy of d")
	if err := roundTrip(t, c.node("a"), "d", "ssh", msg); err != nil {
		t.Fatalf("a (ops) dials d/ssh: %v", err)
	}
	// d drops the groups it verified, as when its table of them is full.
	d.router.cert.mu.Lock()
	clear(d.router.cert.certOf)
	d.router.cert.mu.Unlock()
	wantRefused(t, "b (web) dials d/ssh after d dropped the groups", roundTrip(t, c.node("b"), "d", "ssh", msg), "d", "denied by the policy of d")
	// A source whose routes d holds no attestation of (one that never
	// announced them): its groups cannot be known, and a rule selecting
	// by group might name it.
	o := &circuit.Open{Source: "unheard-of", Dest: "d", Service: "ssh"}
	if dec, ok := d.precheckDial(o); ok || !strings.Contains(dec.Reason, "groups unknown") {
		t.Fatalf("an unsealed open from a source of unknown groups: %+v, want denied as unknown", dec)
	}
	d.SetPolicy(mustPolicy(t, "deny dial from=mallory service=*\nallow dial from=* service=*\n"))
	if dec, ok := d.precheckDial(o); !ok {
		t.Fatalf("the same under dial rules by name only: %+v, want allowed", dec)
	}
}
