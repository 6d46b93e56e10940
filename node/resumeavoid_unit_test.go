package node

import (
	"slices"
	"testing"
	"time"
)

// The avoid set keeps every hop whose path or attempt failed, the oldest
// failure first, at most maxAvoided, and forgets a hop ttl after its last
// failure.
func TestResumeAvoidSetOrder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newAvoidSet(time.Minute)
	s.add("b", t0)
	s.add("c", t0.Add(time.Second))
	if got := s.order(t0.Add(2 * time.Second)); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("after b then c failed: %v, want [b c]", got)
	}
	// An attempt through b got no answer: c, which failed longer ago, goes first.
	s.add("b", t0.Add(3*time.Second))
	if got := s.order(t0.Add(4 * time.Second)); !slices.Equal(got, []string{"c", "b"}) {
		t.Fatalf("after b failed again: %v, want [c b]", got)
	}
	for i, h := range []string{"e", "f", "g"} {
		s.add(h, t0.Add(time.Duration(5+i)*time.Second))
	}
	if got := s.order(t0.Add(10 * time.Second)); !slices.Equal(got, []string{"b", "e", "f", "g"}) {
		t.Fatalf("after six hops failed: %v, want the last %d: [b e f g]", got, maxAvoided)
	}
	if got := s.order(t0.Add(3*time.Second + time.Minute + 1)); !slices.Equal(got, []string{"e", "f", "g"}) {
		t.Fatalf("a minute after b failed: %v, want [e f g]", got)
	}
	if got := s.order(t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("an hour later: %v, want none", got)
	}
}
