package topology

import (
	"fmt"
	"slices"
	"testing"
)

// TestLongLinksSpreadOverTheMesh: the long links of a mesh whose names
// differ only in their last characters (n0000 … n0999, as operators
// number hosts) go to many different routers, each chosen by a few, as
// a uniform random choice would: not to a few routers that every node's
// hash ranks first, which would load their degree and leave the rest of
// the mesh without the shortcuts long links are for.
func TestLongLinksSpreadOverTheMesh(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 400
	}
	var ms []Member
	for i := range n {
		name := fmt.Sprintf("n%04d", i)
		ms = append(ms, Member{Name: name, Addr: name, Coord: at(float64(i))})
	}
	chosen := make(map[string]int)
	for i, self := range ms {
		plan := Decide(Input{Self: self.Name, Coord: at(float64(i)), Members: ms, Config: Config{Adds: 16}})
		j := slices.Index(plan.Why, WhyLong)
		if j < 0 {
			t.Fatalf("%s: no long link in %v", self.Name, plan.Why)
		}
		chosen[plan.Add[j].Name]++
	}
	most := 0
	for _, c := range chosen {
		most = max(most, c)
	}
	// A uniform choice: about (1 − 1/e) n = 0.63 n distinct routers, the
	// busiest chosen by 5 or 6 (the maximum of n Poisson(1) draws).
	t.Logf("%d nodes' long links go to %d routers, the busiest chosen by %d", n, len(chosen), most)
	if len(chosen) < n/2 || most > 10 {
		t.Errorf("long links of %d nodes go to %d routers (want at least %d), the busiest chosen by %d (want at most 10)", n, len(chosen), n/2, most)
	}
}
