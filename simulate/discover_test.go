package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// discover10 starts ten nodes in three regions that find each other by
// gossip through n1: no link line.
const discover10 = `regions eu:n1..n4 us:n5..n7 ap:n8..n10 inside=1ms between=30ms..80ms
discover seed=n1 nodes=n2..n10
wait members timeout=1m
wait reachable timeout=2m
expect route n10 n2
measure
`

func TestDiscoverScenario(t *testing.T) {
	for _, be := range []Backend{BackendMem, BackendQUIC} {
		t.Run(string(be), func(t *testing.T) {
			s, err := Parse("discover10.sim", discover10)
			if err != nil {
				t.Fatal(err)
			}
			rep := Test(t, s, Config{Backend: be})
			if !rep.OK() {
				return // Test logged the report
			}
			last := rep.Steps[len(rep.Steps)-1]
			ms := last.Mesh
			if ms == nil {
				t.Fatalf("measure gave no statistics: %+v", last)
			}
			t.Logf("%s", last.Output)
			// The link policy of package node connects ten nodes fully
			// (issue 12 tracks larger meshes).
			if ms.Nodes != 10 || ms.Pairs != 90 || ms.ReachablePairs != 90 || ms.Isolated != 0 || ms.Components != 1 {
				t.Errorf("mesh %+v: want 10 nodes, every pair reachable, one component", ms)
			}
			if ms.MaxDegree > defaultMaxLinks || ms.MeanDegree < 1 {
				t.Errorf("degree max %d mean %.2f: want at most the default MaxLinks (%d) and at least 1", ms.MaxDegree, ms.MeanDegree, defaultMaxLinks)
			}
			if ms.StretchPairs != 90 || ms.Stretch < 1 || ms.MaxStretch < ms.Stretch {
				t.Errorf("stretch %+v: want 90 routes compared with the underlay, each at least the optimum", ms)
			}
			if ms.Gossip.Packets == 0 || ms.Gossip.Streams < 9 || ms.Gossip.PacketBytes == 0 {
				t.Errorf("gossip %+v: want datagrams and a stream per join", ms.Gossip)
			}
			for _, name := range []string{"members known", "all reachable", "reachable pairs", "diameter", "link churn", "gossip bytes"} {
				if !slices.ContainsFunc(rep.Measurements, func(m Measurement) bool { return m.Name == name }) {
					t.Errorf("no %q measurement in %+v", name, rep.Measurements)
				}
			}
		})
	}
}

// TestDiscoverPartitionHeal splits the underlay of ten gossip nodes in two
// halves: gossip on each side declares the other side gone and routing
// keeps each side connected; after the heal the members see each other
// again and every node reaches every other.
func TestDiscoverPartitionHeal(t *testing.T) {
	for _, be := range []Backend{BackendMem, BackendQUIC} {
		t.Run(string(be), func(t *testing.T) {
			if be == BackendQUIC && testing.Short() {
				t.Skip("QUIC partition and heal: about 80 s under the race detector on a loaded machine; mem runs in -short")
			}
			synctest.Test(t, func(t *testing.T) {
				testPartitionHeal(t, be)
			})
		})
	}
}

func testPartitionHeal(t *testing.T, be Backend) {
	c, err := NewCluster(Config{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	var west, east []string
	u := &Underlay{Region: map[string]string{}, Inside: time.Millisecond,
		Between: map[[2]string]time.Duration{{"east", "west"}: 40 * time.Millisecond}}
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("n%d", i)
		if i <= 5 {
			west, u.Region[name] = append(west, name), "west"
		} else {
			east, u.Region[name] = append(east, name), "east"
		}
	}
	if err := c.SetUnderlay(u); err != nil {
		t.Fatal(err)
	}
	if err := c.Discover(ctx, "n1", append(west[1:], east...)...); err != nil {
		t.Fatal(err)
	}
	wait := func(what string, d time.Duration, f func(context.Context) (time.Duration, error)) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		took, err := f(wctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s after %v", what, took)
	}
	wait("members known", time.Minute, c.WaitMembers)
	wait("all reachable", 2*time.Minute, c.WaitReachable)

	if err := c.PartitionUnderlay(west, east); err != nil {
		t.Fatal(err)
	}
	// Gossip declares the other half gone; routing withdraws it.
	split := func() error {
		for _, side := range [][2][]string{{west, east}, {east, west}} {
			for _, a := range side[0] {
				ms, err := c.Members(a)
				if err != nil {
					return err
				}
				for _, b := range side[1] {
					if slices.Contains(ms, b) {
						return fmt.Errorf("%s still lists %s as a member", a, b)
					}
					if _, ok, _ := c.Route(a, b); ok {
						return fmt.Errorf("%s still has a route to %s", a, b)
					}
				}
			}
		}
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = poll(pctx, split)
	cancel()
	if err != nil {
		t.Fatalf("partition: %v", err)
	}
	wait("each half reachable inside", 2*time.Minute, c.WaitReachable)

	if err := c.HealUnderlay(); err != nil {
		t.Fatal(err)
	}
	wait("members known after the heal", 3*time.Minute, c.WaitMembers)
	wait("all reachable after the heal", 3*time.Minute, c.WaitReachable)
	ms, err := c.MeasureMesh()
	if err != nil {
		t.Fatal(err)
	}
	if ms.Reachable != 1 || ms.Components != 1 {
		t.Errorf("after the heal: %v", ms)
	}
	t.Logf("%v", ms)
}

// TestDiscoverKillRestart crashes the seed and another gossip node and
// restarts them: the rest stay connected, and the restarted nodes (the
// seed rejoining the nodes that started after it) are members and
// reachable again.
func TestDiscoverKillRestart(t *testing.T) {
	const src = `regions eu:n1..n3 us:n4..n6 between=40ms
discover seed=n1 nodes=n2..n6
wait members timeout=1m
wait reachable timeout=1m
kill n1 n4
expect unreachable n2 n4 within=1m
wait reachable timeout=1m
restart n1 n4
wait members timeout=2m
wait reachable timeout=2m
expect route n4 n1
`
	for _, be := range []Backend{BackendMem, BackendQUIC} {
		t.Run(string(be), func(t *testing.T) {
			s, err := Parse("kill.sim", src)
			if err != nil {
				t.Fatal(err)
			}
			Test(t, s, Config{Backend: be})
		})
	}
}

// TestWaitMembersReports: a wait for gossip that takes long says how far
// it has come (how many nodes know every member), so a slow run of many
// nodes shows where it is; and it still ends when every member is known.
func TestWaitMembersReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := NewCluster(Config{Backend: BackendMem})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var names []string
		for i := 1; i <= 10; i++ {
			names = append(names, fmt.Sprintf("n%d", i))
		}
		if err := c.Discover(ctx, names[0], names[1:]...); err != nil {
			t.Fatal(err)
		}
		var reports []string
		took, err := c.waitMembers(ctx, time.Millisecond, func(d time.Duration, status string) {
			reports = append(reports, fmt.Sprintf("%v: %s", d, status))
		})
		if err != nil {
			t.Fatalf("wait members: %v (reports %q)", err, reports)
		}
		if len(reports) == 0 {
			t.Fatalf("no progress reported in a wait of %v", took)
		}
		for _, r := range reports {
			if !strings.Contains(r, "of 10 nodes know every member") || !strings.Contains(r, "of 100 members known") {
				t.Errorf("report %q: want how many of the 10 nodes know every member and of the 100 (node, member) pairs", r)
			}
		}
		t.Logf("%d reports in %v, the first %q, the last %q", len(reports), took, reports[0], reports[len(reports)-1])
	})
}

// TestSetUnderlayRefusesBadValues: an underlay that is nil, has a
// negative latency, a place on the plane that is not a number or too far
// to give a duration, or more placed nodes than the cluster may hold is
// refused with ErrInvalidArgument or ErrTooManyNodes, and the links keep
// their cost. Before, nil panicked (a nil dereference), the others were
// taken: a negative or overflowing latency wrapped the mem link's cost to
// 4294967096 (an RTT of 11h55m), and the nodes beyond the bound each got
// a latency to every other (5·10¹¹ pairs for a million).
func TestSetUnderlayRefusesBadValues(t *testing.T) {
	defer func(n int) { maxClusterNodes = n }(maxClusterNodes)
	maxClusterNodes = 3
	c, ctx := startedMemCluster(t, "a", "b")
	defer c.Close()
	if err := c.Link(ctx, "a", "b", LinkParams{Latency: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	cost := func() uint32 {
		links, err := c.Links("a")
		if err != nil || len(links) != 1 {
			t.Fatalf("links of a: %v, %v", links, err)
		}
		return links[0].Cost
	}
	before := cost()
	eu := map[string]string{"a": "eu", "b": "eu"}
	for _, tc := range []struct {
		name string
		u    *Underlay
		want error
	}{
		{"nil", nil, ErrInvalidArgument},
		{"negative inside", &Underlay{Region: eu, Inside: -time.Millisecond}, ErrInvalidArgument},
		{"negative between", &Underlay{Region: map[string]string{"a": "eu", "b": "us"},
			Between: map[[2]string]time.Duration{{"eu", "us"}: -time.Second}}, ErrInvalidArgument},
		{"inside latency past MaxDuration", &Underlay{Region: eu, Inside: MaxDuration + 1}, ErrInvalidArgument},
		{"between latency that overflows", &Underlay{Region: map[string]string{"a": "eu", "b": "us"},
			Between: map[[2]string]time.Duration{{"eu", "us"}: 1 << 62}}, ErrInvalidArgument},
		{"place not a number", &Underlay{Region: eu, Pos: map[string][2]float64{"a": {math.NaN(), 0}, "b": {0, 0}}}, ErrInvalidArgument},
		{"place too far", &Underlay{Region: eu, Pos: map[string][2]float64{"a": {1e300, 0}, "b": {-1e300, 0}}}, ErrInvalidArgument},
		{"too many nodes", &Underlay{Region: map[string]string{"a": "eu", "b": "eu", "c": "eu", "d": "eu"}}, ErrTooManyNodes},
	} {
		if err := c.SetUnderlay(tc.u); !errors.Is(err, tc.want) {
			t.Errorf("%s: SetUnderlay returned %v, want %v", tc.name, err, tc.want)
		}
		if got := cost(); got != before {
			t.Errorf("%s: link a-b costs %d after the refused underlay, want %d as before", tc.name, got, before)
		}
	}
}
