package node

import (
	"testing"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestRelayReloadEndsCircuitsOfUnknownGroups: a relay that cannot know the
// groups of a circuit's ends (its CA changed, so the attestations it holds
// no longer verify) refuses a new circuit as long as a relay rule selects
// by group (docs/SECURITY.md: "a deny relay ... to=group:ops fails
// closed"), and a new policy ends every open circuit it no longer allows,
// "decided on the same subjects as when it opened". Before, the circuits
// open were decided by the relay rules alone: a circuit opened under
// rules by name only, with the groups of both ends unknown, stayed open
// under a new policy whose relay rules select by group (0 closed), while
// the same relay refused that very circuit opened again.
func TestRelayReloadEndsCircuitsOfUnknownGroups(t *testing.T) {
	c, _ := policyMesh(t, map[string]string{"r": "deny relay from=b to=*\nallow relay from=* to=*\n"})
	r := c.node("r")
	// r switches to another CA: the certificates it verified, and the
	// groups read from them, are dropped, and the attestations routing
	// holds no longer verify.
	ca2, err := identity.NewCA("test", 0)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := ca2.IssueWith("r", identity.IssueOptions{Groups: []string{"infra"}})
	if err != nil {
		t.Fatal(err)
	}
	r.router.cert.setIdentity(id2)
	if s, known := r.PolicySubject("d"); known {
		t.Fatalf("r still knows d's groups (%v) under the new CA", s.Groups)
	}

	// Rules by name only: r relays a to d, groups unknown.
	conn := openEcho(t, c.node("a"), "d", "web")

	closed := r.SetPolicy(mustPolicy(t, "deny relay from=* to=group:infra\nallow relay from=* to=*\n"))
	// The new policy refuses the same circuit opened again.
	wantRefused(t, "a to d through r under the group rule", roundTrip(t, c.node("a"), "d", "web", []byte("x")), "r", "groups unknown")
	if closed == 0 {
		t.Errorf("r's new policy (deny relay to=group:infra) closed %d circuits, want 1: the circuit a to d, whose destination's groups r cannot know, "+
			"stays open although r refuses the same circuit when it is opened again (groups unknown, and relay rules select by group)", closed)
	}
	wantDenied(t, "a's circuit to d through r after the group rule", conn, 1)
}
