package simulate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// runWorkload runs a scenario ending in a workload in virtual time and
// returns its report and the workload's result.
func runWorkload(t *testing.T, backend Backend, src string) (*Report, *WorkloadResult) {
	t.Helper()
	s, err := Parse(t.Name()+".sim", src)
	if err != nil {
		t.Fatal(err)
	}
	rep := Test(t, s, Config{Backend: backend})
	if testing.Verbose() {
		rep.WriteTable(t.Output())
	}
	w := rep.Steps[len(rep.Steps)-1].Workload
	if w == nil {
		t.Fatal("the workload step has no result")
	}
	return rep, w
}

// Circuits between every ordered pair of a mesh whose routes are all
// shortest: every one is verified, and every path is as cheap as Dijkstra
// over the links' costs says.
func TestWorkloadAllPairsMem(t *testing.T) {
	rep, w := runWorkload(t, BackendMem, `
nodes n1..n8
random edges=12 seed=3 latency=1ms
wait converged
wait optimal
workload pairs=all size=4KiB
`)
	if w.Circuits != 8*7 || w.Succeeded != w.Circuits || w.SuccessRate != 1 {
		t.Errorf("%d of %d circuits verified (rate %v), want all 56 ordered pairs", w.Succeeded, w.Circuits, w.SuccessRate)
	}
	if w.Bytes != 56*4096 {
		t.Errorf("%d bytes verified, want %d", w.Bytes, 56*4096)
	}
	if w.CostStretch.Max != 1 || w.Longer != 0 || w.HopStretch.Mean < 1 {
		t.Errorf("path cost stretch %+v, %d longer, hops %+v, want every path as cheap as the shortest", w.CostStretch, w.Longer, w.HopStretch)
	}
	names := map[string]bool{}
	for _, m := range rep.Measurements {
		names[m.Name] = true
	}
	for _, want := range []string{"circuit success", "open p99", "open per hop p50", "routing messages", "optimal", "optimal after setup", "convergence after setup"} {
		if !names[want] {
			t.Errorf("no %q measurement in %v", want, rep.Measurements)
		}
	}
}

// Circuits opened at a rate over QUIC links with latency: the workload
// lasts as long as the rate says, and each hop adds at least its round
// trip to a circuit's open time.
func TestWorkloadRateQUIC(t *testing.T) {
	_, w := runWorkload(t, BackendQUIC, `
nodes n1..n8
random edges=10 seed=5 latency=1ms
wait converged
workload circuits=60 rate=10 size=2KiB seed=9
`)
	if w.Succeeded != 60 {
		t.Errorf("%d of 60 circuits verified: %v", w.Succeeded, w.Errors)
	}
	if w.Elapsed < 5900*time.Millisecond {
		t.Errorf("60 circuits at 10/s took %v of virtual time, want at least 5.9s (the refreshes of routing every 4s are counted)", w.Elapsed)
	}
	if w.OpenPerHop.P50 < 2*time.Millisecond || w.OpenPerHop.P99 < w.OpenPerHop.P50 || w.Open.P99 < w.OpenPerHop.P99 {
		t.Errorf("open %+v, per hop %+v: want at least the 2ms round trip per hop, p99 ≥ p50", w.Open, w.OpenPerHop)
	}
	if w.Throughput <= 0 || w.CostStretch.Mean < 1 || w.RoutingMessages == 0 {
		t.Errorf("throughput %v, cost stretch %+v, %d routing messages", w.Throughput, w.CostStretch, w.RoutingMessages)
	}
}

// The summary counts failures by kind and compares each path with the
// cheapest one.
func TestWorkloadSummary(t *testing.T) {
	g := linkGraph{
		"a": {"b": 100, "c": 500},
		"b": {"a": 100, "c": 100},
		"c": {"a": 500, "b": 100},
	}
	ok := func(from, to string, open time.Duration, path ...string) circuitOutcome {
		return circuitOutcome{res: TransferResult{From: from, To: to, Bytes: 10, Path: path, openPath: path, Open: open, Duration: open}}
	}
	fail := func(from, to string) circuitOutcome {
		return circuitOutcome{res: TransferResult{From: from, To: to}, err: fmt.Errorf("transfer 10 bytes %s→%s: %w", from, to, errors.New("reset"))}
	}
	w := summarise([]circuitOutcome{
		ok("a", "c", 4*time.Millisecond, "a", "b", "c"), // shortest: cost 200, 2 hops
		ok("a", "c", 2*time.Millisecond, "a", "c"),      // cost 500 against 200, 1 hop against 2
		ok("b", "a", 2*time.Millisecond, "b", "a"),
		fail("a", "b"),
		fail("c", "b"),
	}, g)
	if w.Circuits != 5 || w.Succeeded != 3 || w.SuccessRate != 0.6 || w.Bytes != 30 {
		t.Errorf("%d of %d (%v), %d bytes; want 3 of 5 (0.6), 30 bytes", w.Succeeded, w.Circuits, w.SuccessRate, w.Bytes)
	}
	if len(w.Errors) != 1 || w.Errors[0].Count != 2 || !strings.Contains(w.Errors[0].Error, "A→B") {
		t.Errorf("errors %+v, want one kind counted twice", w.Errors)
	}
	if w.Longer != 1 || w.CostStretch.Max != 2.5 || w.HopStretch.Max != 1 || w.HopStretch.Mean != (1+0.5+1)/3.0 {
		t.Errorf("longer %d, cost %+v, hops %+v", w.Longer, w.CostStretch, w.HopStretch)
	}
	if w.OpenPerHop.P50 != 2*time.Millisecond || w.Open.Max != 4*time.Millisecond || w.Open.P50 != 2*time.Millisecond {
		t.Errorf("open %+v, per hop %+v", w.Open, w.OpenPerHop)
	}
}

func TestParseWorkload(t *testing.T) {
	s, err := Parse("w.sim", "nodes a b c\nworkload circuits=50 pairs=random rate=10/s size=1KiB seed=4 within=2s\nworkload rate=5 duration=2s\nwait optimal timeout=9s")
	if err != nil {
		t.Fatal(err)
	}
	w := s.Steps[1].Workload
	if w == nil || *w != (WorkloadSpec{Circuits: 50, Rate: 10, Size: 1024, Seed: 4, Within: 2 * time.Second}) {
		t.Errorf("parsed %+v", w)
	}
	if got := s.Steps[2].Workload.pairs([]string{"a", "b", "c"}, 1); len(got) != 10 {
		t.Errorf("rate=5 duration=2s gives %d circuits, want 10", len(got))
	}
	if st := s.Steps[3]; st.Op != OpWaitOptimal || st.Duration != 9*time.Second {
		t.Errorf("wait optimal parsed as %v %v", st.Op, st.Duration)
	}
	for _, bad := range []string{
		"workload",
		"workload circuits=0",
		"workload circuits=10 pairs=some",
		"workload circuits=200000",
		"workload circuits=10 rate=1 duration=1s",
		"workload circuits=10000 size=1GiB",
		"workload circuits=10 colour=red",
		"workload now",
	} {
		if _, err := Parse("bad.sim", "nodes a b\n"+bad); err == nil || !strings.HasPrefix(err.Error(), "bad.sim:2:") {
			t.Errorf("%q: %v, want an error on line 2", bad, err)
		}
	}
}

// TestWorkloadRefusesBadSpec: a Transfer of a negative size and a Workload
// whose spec is out of range fail with ErrInvalidArgument before any
// circuit opens, and a script's pairs=all over more nodes than
// MaxWorkloadCircuits pairs does not parse. Before, a negative size or
// circuit count panicked (makeslice), a negative workload size ran the
// default size, and a Workload of more circuits than MaxWorkloadCircuits
// (pairs=all too) ran that many of them and reported them all.
func TestWorkloadRefusesBadSpec(t *testing.T) {
	c, ctx := startedMemCluster(t, "a", "b")
	defer c.Close()
	if err := c.Link(ctx, "a", "b", LinkParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Transfer(ctx, "a", "b", -1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Transfer of -1 bytes: %v, want ErrInvalidArgument", err)
	}
	for _, spec := range []WorkloadSpec{
		{Circuits: -5},
		{Circuits: MaxWorkloadCircuits + 1, Size: 1},
		{Circuits: 2, Size: -1},
		{Circuits: 2, Size: MaxWorkloadBytes},
		{Circuits: 2, Size: 1 << 62}, // circuits × size overflows
		{Rate: math.NaN(), Duration: time.Second},
		{Rate: -1, Duration: time.Second},
		{Circuits: 2, Within: -time.Second},
	} {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		w, err := c.Workload(wctx, spec)
		cancel()
		if !errors.Is(err, ErrInvalidArgument) || w.Circuits != 0 {
			t.Errorf("Workload(%+v): %d circuits, error %v; want none opened and ErrInvalidArgument", spec, w.Circuits, err)
		}
	}
	for _, tc := range []struct{ src, msg string }{
		{"nodes n1..n400\nworkload pairs=all", "159600 circuits: at most 100000"},
		{"nodes n1..n100\nworkload pairs=all size=1MiB", "at most 4GiB in all"},
	} {
		_, err := Parse("all.sim", tc.src)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 2 || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("%q: %v, want an error on line 2 containing %q", tc.src, err, tc.msg)
		}
	}
	if _, err := Parse("all.sim", "nodes n1..n300\nworkload pairs=all"); err != nil {
		t.Errorf("pairs=all over 300 nodes (89700 circuits): %v", err)
	}
}
