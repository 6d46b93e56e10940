package routing_test

import (
	"testing"
)

// TestCrossedAttestationsCounted: a node sends an origin's attestation on
// in the round after it first holds it, to every neighbour not known to
// hold it. In a triangle each node learns the other two from both of its
// neighbours: the second copy of each is one it had sent that neighbour
// in the same round (held, and crossed). In a square each node learns
// the opposite one from both sides in the same round (held, not
// crossed: neither sender knew of the other). On a line every copy is
// new.
func TestCrossedAttestationsCounted(t *testing.T) {
	for _, tc := range []struct {
		name          string
		nodes         []string
		links         [][2]string
		held, crossed uint64 // each node
	}{
		{"triangle", []string{"a", "b", "c"}, [][2]string{{"a", "b"}, {"b", "c"}, {"a", "c"}}, 2, 2},
		{"square", []string{"a", "b", "c", "d"}, [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}, {"a", "d"}}, 1, 0},
		{"line", []string{"a", "b", "c", "d"}, [][2]string{{"a", "b"}, {"b", "c"}, {"c", "d"}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 1, propCfg(), tc.nodes...)
			for _, l := range tc.links {
				mustLink(t, n, l[0], l[1], 10)
			}
			quiet(t, n)
			for _, s := range tc.nodes {
				st := n.Engine(s).Stats()
				if st.AttestationsHeld != tc.held || st.AttestationsCrossed != tc.crossed {
					t.Errorf("%s: %d attestations held already, %d of them crossed, want %d and %d",
						s, st.AttestationsHeld, st.AttestationsCrossed, tc.held, tc.crossed)
				}
			}
		})
	}
}
