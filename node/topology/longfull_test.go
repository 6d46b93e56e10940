package topology

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// hashOrder returns the routers of s outside the near set (r0, r1) in the
// order the seeded hash ranks them for "me": the long link's candidates.
func (s *stepper) hashOrder() []string {
	p := planner{in: Input{Self: "me"}, cfg: s.cfg.withDefaults(), hashes: map[string]uint64{}}
	var out []string
	for _, m := range s.members {
		if m.Name != "r0" && m.Name != "r1" {
			out = append(out, m.Name)
		}
	}
	slices.SortFunc(out, p.byHash)
	return out
}

// run steps for d and returns the changes: links made ("+"), dropped
// ("-") and dials refused ("!").
func (s *stepper) run(d time.Duration) []string {
	before := len(s.changes)
	for end := s.now + d; s.now < end; {
		s.step()
	}
	return s.changes[before:]
}

// linksMade returns the changes that made or dropped a link.
func linksMade(changes []string) []string {
	return slices.DeleteFunc(slices.Clone(changes), func(c string) bool { return strings.HasPrefix(c, "!") })
}

// refusals returns the changes that were dials to name refused.
func refusals(changes []string, name string) int {
	n := 0
	for _, c := range changes {
		if strings.HasPrefix(c, "!"+name+" ") {
			n++
		}
	}
	return n
}

// TestLongLinkPassesFullRouter: the router the seeded hash ranks first
// for a node's long link (target 3: two near links and a long one) is at
// its maximum and refuses the link. The node takes the next router in
// hash order as its long link, at most LongTries routers deep, and dials
// the refusing ones again only as its back-off from them allows (15 s,
// then doubling to 5 minutes). When the first has room again, the node
// links to it and then drops the one it took instead (make before
// break), and nothing changes for a minute after. Before, the node dialled
// the first router again at every back-off and held no long link.
func TestLongLinkPassesFullRouter(t *testing.T) {
	for seed := range int64(4) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			s := newStepper(t, seed)
			order := s.hashOrder()
			first, next := order[0], order[1]
			if s.longRouter() != first {
				t.Fatalf("the long router %s is not the first in hash order %v", s.longRouter(), order)
			}
			s.full[first] = true
			got := s.run(10 * time.Minute)
			if l := s.links[next]; l == nil || !l.out || !l.long {
				t.Fatalf("with %s at its maximum: links %v after 10 minutes (changes %v): want the long link to %s, the next in hash order %v", first, s.held(), got, next, order)
			}
			if len(s.links) != 3 {
				t.Errorf("with %s at its maximum: links %v: want 3", first, s.held())
			}
			// Its links settle once; the refused dials follow the
			// back-off: at 0, 15, 30, 45, 60, 76, 108, 172, 300 and 556 s.
			made := linksMade(got)
			if n := refusals(got, first); n > 10 {
				t.Errorf("%s refused %d dials in 10 minutes: want at most 10 (changes %v)", first, n, got)
			}
			settled := s.run(5 * time.Minute)
			if made := linksMade(settled); len(made) != 0 {
				t.Errorf("with %s at its maximum: link changes %v in the 5 minutes after %v: want none", first, made, got)
			}
			if n := refusals(settled, first); n < 1 || n > 2 {
				t.Errorf("%s refused %d dials in 5 minutes after 10: want 1 or 2 (at most one per 5 minutes once backed off)", first, n)
			}
			for _, c := range append(got, settled...) {
				if strings.HasSuffix(c, " long") && !strings.HasPrefix(c[1:], first+" ") && !strings.HasPrefix(c[1:], next+" ") {
					t.Errorf("dialled %s as a long link, beyond %s and %s in hash order %v (links made %v)", c[1:], first, next, order, made)
				}
			}

			// The first has room again: the node links to it at its next
			// dial and drops the one it took instead.
			s.full[first] = false
			back := s.run(6 * time.Minute)
			if l := s.links[first]; l == nil || !l.out || !l.long || s.links[next] != nil || len(s.links) != 3 {
				t.Fatalf("%s has room again: links %v 6 minutes after (changes %v): want the long link to %s and none to %s, 3 links", first, s.held(), back, first, next)
			}
			if want := []string{"+" + first + " long", "-" + next + " replace"}; !slices.Equal(linksMade(back), want) {
				t.Errorf("%s has room again: changes %v: want %v", first, back, want)
			}
		})
	}
	t.Run("three refuse", func(t *testing.T) {
		s := newStepper(t, 0)
		order := s.hashOrder()
		for _, r := range order[:LongTries] {
			s.full[r] = true
		}
		got := s.run(10 * time.Minute)
		if len(s.links) != 3 || s.links["r0"] == nil || s.links["r1"] == nil {
			t.Fatalf("with %v at their maximum: links %v (changes %v): want r0, r1 and the nearest other", order[:LongTries], s.held(), got)
		}
		for name, l := range s.links {
			if l.long || slices.Index(order, name) >= 0 && slices.Index(order, name) < LongTries {
				t.Errorf("with %v at their maximum: links %v: want no long link", order[:LongTries], s.held())
			}
		}
		for _, r := range order[:LongTries] {
			if n := refusals(got, r); n < 5 || n > 10 {
				t.Errorf("%s refused %d dials in 10 minutes: want 5 to 10 (its back-off)", r, n)
			}
		}
		// The third has room: it becomes the long link, in place of the
		// third link the node filled its target with.
		s.full[order[2]] = false
		back := s.run(6 * time.Minute)
		if l := s.links[order[2]]; l == nil || !l.long || len(s.links) != 3 {
			t.Fatalf("%s has room: links %v (changes %v): want it the long link, 3 links", order[2], s.held(), back)
		}
		if made := linksMade(back); len(made) != 2 || made[0] != "+"+order[2]+" long" || !strings.HasSuffix(made[1], " replace") {
			t.Errorf("%s has room: changes %v: want it added and the filler replaced", order[2], back)
		}
	})
}
