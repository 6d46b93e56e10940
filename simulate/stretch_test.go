package simulate

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestShortestPaths(t *testing.T) {
	// a–b–c cheap, a–c dear, d only linked from c's side, e down (absent).
	g := map[string]map[string]uint32{
		"a": {"b": 1, "c": 10},
		"b": {"a": 1, "c": 2},
		"c": {"a": 10, "b": 2, "d": 5, "e": 1},
		"d": {"c": 5},
	}
	got := shortest(g, "a")
	want := map[string]uint64{"a": 0, "b": 1, "c": 3, "d": 8}
	if len(got) != len(want) {
		t.Fatalf("shortest from a: %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("shortest a→%s = %d, want %d", k, got[k], v)
		}
	}
}

// On a line every route is the only path: after convergence RouteStretch
// compares every ordered pair and finds none longer than the shortest.
func TestRouteStretchOnALine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c, err := NewCluster(Config{Backend: BackendMem})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		names := []string{"a", "b", "c", "d", "e"}
		if err := c.AddNodes(ctx, names...); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(names); i++ {
			if err := c.Link(ctx, names[i-1], names[i], LinkParams{Latency: time.Duration(i) * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitConverged(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := c.RouteStretch()
		if err != nil {
			t.Fatal(err)
		}
		if st.Routes != len(names)*(len(names)-1) || st.Longer != 0 || st.MaxRatio != 1 {
			t.Errorf("stretch on a line: %+v, want %d routes, none longer, ratio 1", st, len(names)*(len(names)-1))
		}
		if err := c.Kill("c"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitConverged(ctx); err != nil {
			t.Fatal(err)
		}
		if st, err = c.RouteStretch(); err != nil || st.Routes != 4 || st.Longer != 0 {
			t.Errorf("stretch after c died (a–b and d–e remain): %+v, %v, want 4 routes, none longer", st, err)
		}
	})
}
