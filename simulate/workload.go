package simulate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WorkloadSpec describes many circuits between pairs of running nodes,
// each a verified transfer (Cluster.Transfer).
type WorkloadSpec struct {
	// Circuits is how many circuits to open. Default: Rate × Duration
	// when both are set; with AllPairs, one per ordered pair of running
	// nodes.
	Circuits int
	// AllPairs takes the pairs in turn from every ordered pair of running
	// nodes (in the order they were added) instead of at random.
	AllPairs bool
	// Rate is how many circuits open per second; 0 opens them over
	// Duration, or all at once when Duration is 0 too.
	Rate float64
	// Size is the bytes each circuit carries. Default DefaultWorkloadSize.
	Size int64
	// Duration spreads the circuits evenly over this time when Rate is 0.
	Duration time.Duration
	// Seed chooses the random pairs. Default: the cluster's seed.
	Seed uint64
	// Within bounds each circuit, from its start to its verified answer.
	// Default DefaultTransferWithin.
	Within time.Duration
}

// Bounds and defaults of a workload.
const (
	// MaxWorkloadCircuits bounds the circuits of one workload.
	MaxWorkloadCircuits = 100_000
	// MaxWorkloadBytes bounds a workload's circuits × size.
	MaxWorkloadBytes = 4 << 30
	// MaxConcurrentCircuits bounds the circuits of a workload in flight at
	// once; a circuit due while that many run waits for one to end.
	MaxConcurrentCircuits = 4096
	// DefaultWorkloadSize is a circuit's bytes when size= is not given.
	DefaultWorkloadSize = 16 << 10
)

// DurationDist summarises a distribution of times.
type DurationDist struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// RatioDist summarises a distribution of ratios (1 is ideal).
type RatioDist struct {
	Mean float64 `json:"mean"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// WorkloadResult measures a workload.
type WorkloadResult struct {
	Circuits  int `json:"circuits"`
	Succeeded int `json:"succeeded"` // transfers verified by count and hash
	// SuccessRate is Succeeded / Circuits.
	SuccessRate float64 `json:"success_rate"`
	// Bytes is the payload of the circuits that succeeded.
	Bytes int64 `json:"bytes"`
	// Elapsed runs from the workload's start to its last circuit's end;
	// Throughput is Bytes / Elapsed, in bytes per second.
	Elapsed    time.Duration `json:"elapsed_ns"`
	Throughput float64       `json:"throughput"`
	// Open is the circuits' open times (Dial), OpenPerHop the open time
	// divided by the hops of the path it was opened on, Transfer the
	// times from the end of Dial to the verified answer.
	Open       DurationDist `json:"open"`
	OpenPerHop DurationDist `json:"open_per_hop"`
	Transfer   DurationDist `json:"transfer"`
	// CostStretch is each circuit's path cost (TransferResult.Path: the
	// path it ran on last) over the cheapest path's
	// (Dijkstra over the links' costs when the workload started),
	// HopStretch its hop count over the cheapest path's; Longer counts the
	// circuits whose path cost more than the cheapest. Circuits whose path
	// crossed a link not in that snapshot are left out.
	CostStretch RatioDist `json:"cost_stretch"`
	HopStretch  RatioDist `json:"hop_stretch"`
	Longer      int       `json:"longer"`
	// RoutingMessages is how many routing messages the nodes running
	// throughout the workload sent while it ran.
	RoutingMessages uint64 `json:"routing_messages"`
	// Errors counts the failed circuits by error (the most frequent five,
	// with the pair's names taken out).
	Errors []ErrorCount `json:"errors,omitempty"`
}

// ErrorCount is one kind of error and how many circuits had it.
type ErrorCount struct {
	Error string `json:"error"`
	Count int    `json:"count"`
}

// circuitOutcome is one circuit of a workload.
type circuitOutcome struct {
	res TransferResult
	err error
}

// Workload opens the circuits spec describes, each a verified transfer
// to the SinkService of its destination, and measures them. The error is
// for a workload that cannot start: fewer than two running nodes, or a
// spec out of range (a negative value, a rate that is not a number, more
// than MaxWorkloadCircuits circuits, pairs=all included, or more than
// MaxWorkloadBytes in all), which fails with ErrInvalidArgument before any
// circuit opens. The circuits' failures are counted in the result. Once
// Close has begun it fails with an error wrapping net.ErrClosed.
func (c *Cluster) Workload(ctx context.Context, spec WorkloadSpec) (WorkloadResult, error) {
	c.mu.Lock()
	err := c.openLocked("workload")
	c.mu.Unlock()
	if err != nil {
		return WorkloadResult{}, err
	}
	var names []string
	for _, name := range c.Names() {
		if c.Node(name) != nil {
			names = append(names, name)
		}
	}
	if len(names) < 2 {
		return WorkloadResult{}, fmt.Errorf("workload: %d running nodes, want at least 2", len(names))
	}
	n, err := spec.count(len(names))
	if err != nil {
		return WorkloadResult{}, fmt.Errorf("workload: %w: %w", ErrInvalidArgument, err)
	}
	if n == 0 {
		return WorkloadResult{}, fmt.Errorf("workload: no circuits (give circuits=N, or rate= and duration=): %w", ErrInvalidArgument)
	}
	pairs := spec.pairs(names, c.cfg.Seed)
	size, within := spec.Size, spec.Within
	if size <= 0 {
		size = DefaultWorkloadSize
	}
	if within <= 0 {
		within = DefaultTransferWithin
	}
	graph := c.linkGraph()
	before := c.routingMessages()
	start := time.Now()
	outcomes := make([]circuitOutcome, len(pairs))
	sem := make(chan struct{}, MaxConcurrentCircuits)
	var wg sync.WaitGroup
	for i, p := range pairs {
		if d := spec.offset(i, len(pairs)) - time.Since(start); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			outcomes[i].err = fmt.Errorf("not started: %w", ctx.Err())
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tctx, cancel := context.WithTimeout(ctx, within)
			defer cancel()
			outcomes[i].res, outcomes[i].err = c.Transfer(tctx, p[0], p[1], size)
		}()
	}
	wg.Wait()
	res := summarise(outcomes, graph)
	res.Elapsed = time.Since(start)
	if res.Elapsed > 0 {
		res.Throughput = float64(res.Bytes) / res.Elapsed.Seconds()
	}
	for name, n := range c.routingMessages() {
		if b, ok := before[name]; ok && n >= b {
			res.RoutingMessages += n - b
		}
	}
	return res, nil
}

// count is how many circuits s opens among running nodes, or an error
// saying why s is out of range: a value negative (or not a number), or
// circuits that come to more than MaxWorkloadCircuits or
// MaxWorkloadBytes.
func (s WorkloadSpec) count(running int) (int, error) {
	switch {
	case s.Circuits < 0:
		return 0, fmt.Errorf("%d circuits: want 0 or more", s.Circuits)
	case !(s.Rate >= 0) || math.IsInf(s.Rate, 1):
		return 0, fmt.Errorf("rate %v: want circuits per second, 0 or more", s.Rate)
	case s.Size < 0:
		return 0, fmt.Errorf("size %d: want 0 (the default) or more", s.Size)
	case s.Duration < 0 || s.Within < 0:
		return 0, fmt.Errorf("duration %v, within %v: want 0 or more", s.Duration, s.Within)
	}
	n := float64(s.Circuits)
	if n == 0 && s.Rate > 0 && s.Duration > 0 {
		n = math.Floor(s.Rate * s.Duration.Seconds())
	}
	if n == 0 && s.AllPairs {
		n = float64(running) * float64(running-1)
	}
	if n > MaxWorkloadCircuits {
		return 0, fmt.Errorf("workload of %.0f circuits: at most %d", n, MaxWorkloadCircuits)
	}
	size := s.Size
	if size == 0 {
		size = DefaultWorkloadSize
	}
	if n > 0 && size > MaxWorkloadBytes/int64(n) { // size*n could overflow
		return 0, fmt.Errorf("workload of %.0f circuits × %s: at most %dGiB in all", n, sizeString(size), MaxWorkloadBytes>>30)
	}
	return int(n), nil
}

// pairs lists the (from, to) of each circuit.
func (s WorkloadSpec) pairs(names []string, clusterSeed uint64) [][2]string {
	n := s.Circuits
	if n == 0 && s.Rate > 0 && s.Duration > 0 {
		n = int(s.Rate * s.Duration.Seconds())
	}
	if s.AllPairs {
		// Pair i of the N·(N-1) ordered pairs, computed from its index so
		// that only the circuits run are held.
		k := len(names)
		total := k * (k - 1)
		if total == 0 {
			return nil
		}
		if n == 0 {
			n = total
		}
		out := make([][2]string, 0, min(n, MaxWorkloadCircuits))
		for i := 0; i < n && i < MaxWorkloadCircuits; i++ {
			j := i % total
			a, b := j/(k-1), j%(k-1)
			if b >= a {
				b++
			}
			out = append(out, [2]string{names[a], names[b]})
		}
		return out
	}
	seed := s.Seed
	if seed == 0 {
		seed = clusterSeed
	}
	rng := rand.New(rand.NewPCG(seed, 0x770a4))
	out := make([][2]string, 0, min(n, MaxWorkloadCircuits))
	for i := 0; i < n && i < MaxWorkloadCircuits; i++ {
		a := rng.IntN(len(names))
		b := rng.IntN(len(names) - 1)
		if b >= a {
			b++
		}
		out = append(out, [2]string{names[a], names[b]})
	}
	return out
}

// offset is when circuit i of n starts, from the workload's start.
func (s WorkloadSpec) offset(i, n int) time.Duration {
	switch {
	case s.Rate > 0:
		return time.Duration(float64(i) / s.Rate * float64(time.Second))
	case s.Duration > 0:
		return s.Duration * time.Duration(i) / time.Duration(n)
	}
	return 0
}

// routingMessages returns how many routing messages each running node
// sent (a restarted node counts from its restart).
func (c *Cluster) routingMessages() map[string]uint64 {
	sent := map[string]uint64{}
	for _, name := range c.Names() {
		if n := c.Node(name); n != nil {
			sent[name] = n.RoutingStats().MessagesOut
		}
	}
	return sent
}

// summarise computes a workload's figures from its circuits.
func summarise(outcomes []circuitOutcome, graph linkGraph) WorkloadResult {
	res := WorkloadResult{Circuits: len(outcomes)}
	var open, perHop, transfer []time.Duration
	var costs, hops []float64
	errs := map[string]int{}
	shortest := map[string]map[string]pathRef{}
	metrics := graph.metrics()
	for _, o := range outcomes {
		if o.err != nil {
			errs[genericError(o.err, o.res.From, o.res.To)]++
			continue
		}
		r := o.res
		res.Succeeded++
		res.Bytes += r.Bytes
		open = append(open, r.Open)
		transfer = append(transfer, r.Duration)
		if h := len(r.openPath) - 1; h > 0 { // the path the open crossed
			perHop = append(perHop, r.Open/time.Duration(h))
		}
		cost, ok := graph.pathCost(r.Path)
		if !ok {
			continue
		}
		if shortest[r.From] == nil {
			shortest[r.From] = map[string]pathRef{}
			for name, p := range shortestPaths(metrics, r.From) {
				shortest[r.From][name] = pathRef{p.Cost, p.Hops}
			}
		}
		best, ok := shortest[r.From][r.To]
		if !ok || best.cost == 0 || best.hops == 0 {
			continue
		}
		costs = append(costs, float64(cost)/float64(best.cost))
		hops = append(hops, float64(len(r.Path)-1)/float64(best.hops))
		if cost > best.cost {
			res.Longer++
		}
	}
	if res.Circuits > 0 {
		res.SuccessRate = float64(res.Succeeded) / float64(res.Circuits)
	}
	res.Open, res.OpenPerHop, res.Transfer = durationDist(open), durationDist(perHop), durationDist(transfer)
	res.CostStretch, res.HopStretch = ratioDist(costs), ratioDist(hops)
	for e, n := range errs {
		res.Errors = append(res.Errors, ErrorCount{e, n})
	}
	sort.Slice(res.Errors, func(i, j int) bool {
		a, b := res.Errors[i], res.Errors[j]
		return a.Count > b.Count || a.Count == b.Count && a.Error < b.Error
	})
	if len(res.Errors) > 5 {
		res.Errors = res.Errors[:5]
	}
	return res
}

type pathRef struct {
	cost uint64
	hops int
}

// genericError is err's text with the circuit's names replaced, so that
// failures of the same kind count together.
func genericError(err error, from, to string) string {
	s := err.Error()
	if from != "" && to != "" {
		s = strings.ReplaceAll(s, from+"→"+to, "A→B")
	}
	return s
}

// quantile is the q-quantile (nearest rank) of sorted values.
func quantile[T any](sorted []T, q float64) T {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func durationDist(ds []time.Duration) DurationDist {
	if len(ds) == 0 {
		return DurationDist{}
	}
	slices.Sort(ds)
	return DurationDist{P50: quantile(ds, 0.5), P99: quantile(ds, 0.99), Max: ds[len(ds)-1]}
}

func ratioDist(rs []float64) RatioDist {
	if len(rs) == 0 {
		return RatioDist{}
	}
	slices.Sort(rs)
	sum := 0.0
	for _, r := range rs {
		sum += r
	}
	return RatioDist{Mean: sum / float64(len(rs)), P99: quantile(rs, 0.99), Max: rs[len(rs)-1]}
}

// String is the result on one line, for the report's table.
func (r WorkloadResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d circuits verified (%.1f%%), %s in %v = %.2f MiB/s; open p50 %v p99 %v; per hop p50 %v p99 %v",
		r.Succeeded, r.Circuits, 100*r.SuccessRate, sizeString(r.Bytes), round(r.Elapsed), r.Throughput/(1<<20),
		round(r.Open.P50), round(r.Open.P99), round(r.OpenPerHop.P50), round(r.OpenPerHop.P99))
	fmt.Fprintf(&b, "; stretch cost mean %.3f max %.3f (%d longer), hops mean %.3f max %.3f; %d routing messages",
		r.CostStretch.Mean, r.CostStretch.Max, r.Longer, r.HopStretch.Mean, r.HopStretch.Max, r.RoutingMessages)
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "; %d× %s", e.Count, e.Error)
	}
	return b.String()
}

// workload parses "workload [circuits=N] [pairs=random|all] [rate=R]
// [size=S] [duration=D] [seed=S] [within=D]".
func (p *parser) workload(st *Step, args []string) error {
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return fmt.Errorf("want workload [circuits=N] [pairs=random|all] [rate=R] [size=S] [duration=D] [seed=S] [within=D]")
	}
	w := &WorkloadSpec{}
	seen := map[string]bool{}
	for _, o := range opts {
		k, v := o[0], o[1]
		if seen[k] {
			return fmt.Errorf("option %s= given twice", k)
		}
		seen[k] = true
		if err := w.option(k, v); err != nil {
			return fmt.Errorf("%s=%s: %v", k, v, err)
		}
	}
	if w.Rate > 0 && w.Duration > 0 && w.Circuits > 0 {
		return fmt.Errorf("workload: give two of circuits=, rate= and duration=, not all three")
	}
	// pairs=all without circuits= is every ordered pair of the nodes
	// running at this line.
	n, err := w.count(p.nnodes - len(p.down))
	switch {
	case err != nil:
		return err
	case n == 0 && !w.AllPairs:
		return fmt.Errorf("workload needs circuits=N, or rate= and duration= (or pairs=all)")
	case p.nnodes < 2:
		return fmt.Errorf("workload needs at least two declared nodes")
	}
	st.Op, st.Workload = OpWorkload, w
	return nil
}

func (w *WorkloadSpec) option(k, v string) error {
	var err error
	switch k {
	case "circuits":
		w.Circuits, err = strconv.Atoi(v)
		if err != nil || w.Circuits < 1 {
			return fmt.Errorf("want a number of circuits from 1 to %d", MaxWorkloadCircuits)
		}
	case "pairs":
		if v != "random" && v != "all" {
			return fmt.Errorf("want random or all")
		}
		w.AllPairs = v == "all"
	case "rate":
		w.Rate, err = strconv.ParseFloat(strings.TrimSuffix(v, "/s"), 64)
		if err != nil || !(w.Rate > 0 && w.Rate <= 1e6) {
			return fmt.Errorf("want circuits per second, such as 50 or 0.5/s")
		}
	case "size":
		w.Size, err = parseSize(v)
	case "duration":
		w.Duration, err = parseDuration(v)
	case "within":
		w.Within, err = parseDuration(v)
	case "seed":
		w.Seed, err = strconv.ParseUint(v, 10, 64)
	default:
		return fmt.Errorf("unknown option (options: circuits=, pairs=, rate=, size=, duration=, seed=, within=)")
	}
	return err
}

// optimalInterval is how often waitOptimal compares the routes with the
// shortest paths: a Dijkstra from every node, too dear for pollInterval
// on large clusters.
const optimalInterval = 100 * time.Millisecond

// waitOptimal waits until the cluster has converged and every route
// costs what the shortest path over the links' costs does (Stretch.Longer
// is 0), checking every optimalInterval.
func (c *Cluster) waitOptimal(ctx context.Context) (Stretch, error) {
	var st Stretch
	check := func() error {
		if err := c.Converged(); err != nil {
			return err
		}
		var err error
		if st, err = c.RouteStretch(); err != nil {
			return err
		}
		if st.Longer > 0 {
			return fmt.Errorf("%d of %d routes longer than the shortest path, worst %s", st.Longer, st.Routes, st.Worst)
		}
		return nil
	}
	t := time.NewTicker(optimalInterval)
	defer t.Stop()
	for {
		err := check()
		if err == nil {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("routes not all shortest: %w", err)
		case <-t.C:
		}
	}
}

// measureSetup records, after a step that added links or nodes (whose
// own time is link setup), the time from that step's end as name
// "after setup".
func (r *runner) measureSetup(line int, name string) {
	switch r.changeOp {
	case OpNodes, OpLink, OpRandom, OpRestart:
		r.measure(name+" after setup", line, ms(time.Since(r.changeEnd)), "ms")
	}
}

// measureWorkload records a workload's figures.
func (r *runner) measureWorkload(line int, w WorkloadResult) {
	r.measure("circuit success", line, 100*w.SuccessRate, "%")
	r.measure("open p50", line, ms(w.Open.P50), "ms")
	r.measure("open p99", line, ms(w.Open.P99), "ms")
	r.measure("open per hop p50", line, ms(w.OpenPerHop.P50), "ms")
	r.measure("open per hop p99", line, ms(w.OpenPerHop.P99), "ms")
	if w.Throughput > 0 {
		r.measure("workload throughput", line, w.Throughput/(1<<20), "MiB/s")
	}
	r.measure("path cost stretch max", line, w.CostStretch.Max, "x")
	r.measure("path hop stretch max", line, w.HopStretch.Max, "x")
	r.measure("routing messages", line, float64(w.RoutingMessages), "messages")
}
