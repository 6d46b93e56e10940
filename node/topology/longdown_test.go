package topology

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestLongLinkPassesDownRouter: the router the seeded hash ranks first
// for a node's long link (target 3: two near links and a long one) is
// down while gossip still lists it, or unreachable from the node: every
// dial to it fails, first as the node joins, then after its long link to
// it is lost. The node takes the next router in hash order as its long
// link and holds it, dialling the first again only as its back-off
// allows (an hour from the second failure, as discovery's ban of
// addresses no handshake proved). When the first is back, the node links
// to it at its next dial and drops the one it took instead (make before
// break). Before, only a refusal at the maximum passed a router over:
// the node dialled the first at every back-off and held no long link.
func TestLongLinkPassesDownRouter(t *testing.T) {
	for seed := range int64(4) {
		for _, lost := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/lost=%v", seed, lost), func(t *testing.T) {
				s := newStepper(t, seed)
				order := s.hashOrder()
				first, next := order[0], order[1]
				if lost {
					s.settle("joining", 0)
					if l := s.links[first]; l == nil || !l.long {
						t.Fatalf("settled: links %v: want the long link to %s", s.held(), first)
					}
					delete(s.links, first)
					s.changes = append(s.changes, "-"+first+" lost")
				}
				s.down[first] = true
				got := s.run(10 * time.Minute)
				if l := s.links[next]; l == nil || !l.out || !l.long || len(s.links) != 3 {
					t.Fatalf("with %s down: links %v after 10 minutes (changes %v): want 3, the long link to %s, the next in hash order %v", first, s.held(), got, next, order)
				}
				if n := refusals(got, first); n > 2 {
					t.Errorf("%d dials to %s in 10 minutes (changes %v): want at most 2 (then an hour's ban)", n, first, got)
				}
				if made := linksMade(s.run(5 * time.Minute)); len(made) != 0 {
					t.Errorf("with %s down: link changes %v in the 5 minutes after 10: want none", first, made)
				}

				// The first is back: the node links to it once its
				// back-off ends and drops the one it took instead.
				s.down[first] = false
				back := s.run(time.Hour)
				if l := s.links[first]; l == nil || !l.out || !l.long || s.links[next] != nil || len(s.links) != 3 {
					t.Fatalf("%s back: links %v an hour after (changes %v): want the long link to %s and none to %s, 3 links", first, s.held(), back, first, next)
				}
				if want := []string{"+" + first + " long", "-" + next + " replace"}; !slices.Equal(linksMade(back), want) {
					t.Errorf("%s back: changes %v: want %v", first, back, want)
				}
			})
		}
	}
}
