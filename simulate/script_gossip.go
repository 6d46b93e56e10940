package simulate

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
)

// Scenario operations of gossip discovery (see the package documentation).
const (
	OpRegions Op = iota + 100
	OpDiscover
	OpWaitMembers
	OpWaitReachable
	OpMeasure
)

func init() {
	opNames[OpRegions] = "regions"
	opNames[OpDiscover] = "discover"
	opNames[OpWaitMembers] = "wait members"
	opNames[OpWaitReachable] = "wait reachable"
	opNames[OpMeasure] = "measure"
}

// Bounds of the gossip commands.
const (
	// MaxRegions bounds the regions of an underlay.
	MaxRegions = 64
	// DefaultGossipTimeout is the timeout of wait members and wait
	// reachable.
	DefaultGossipTimeout = 2 * time.Minute
)

// gossipState is what the parser tracks of the gossip commands.
type gossipState struct {
	seed    string          // the discover seed, once one was given
	members map[string]bool // nodes declared by discover
	regions bool            // a regions line was seen
}

// regions parses "regions NAME:NODES ... [inside=D] [between=D|D..D]
// [spread=D] [seed=S]".
func (p *parser) regions(st *Step, args []string) error {
	const usage = "want regions NAME:NODES... [inside=D] [between=D or D..D] [spread=D] [seed=S], as in regions eu:n1..n5 us:n6..n9 between=30ms..80ms"
	if p.g.regions {
		return fmt.Errorf("regions given twice (one underlay per scenario)")
	}
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return fmt.Errorf("%s", usage)
	}
	u := &Underlay{Region: map[string]string{}, Inside: time.Millisecond, Between: map[[2]string]time.Duration{}}
	var names []string
	members := map[string][]string{} // region → its nodes, in the order given
	for _, w := range words {
		region, list, ok := strings.Cut(w, ":")
		if !ok || region == "" || list == "" {
			return fmt.Errorf("bad region %q: %s", w, usage)
		}
		if err := checkName(region); err != nil {
			return fmt.Errorf("region %q: %v", region, err)
		}
		if slices.Contains(names, region) {
			return fmt.Errorf("region %s given twice", region)
		}
		if names = append(names, region); len(names) > MaxRegions {
			return fmt.Errorf("more than %d regions", MaxRegions)
		}
		nodes, err := p.nodeList(list, MaxNodes-len(u.Region))
		if err != nil {
			return fmt.Errorf("region %s: %v", region, err)
		}
		for _, n := range nodes {
			if r, dup := u.Region[n]; dup {
				return fmt.Errorf("node %s is in regions %s and %s", n, r, region)
			}
			u.Region[n] = region
		}
		members[region] = nodes
	}
	lo, hi, seed := 30*time.Millisecond, 80*time.Millisecond, uint64(1)
	var spread time.Duration
	err = eachOption(opts, func(k, v string) error {
		switch k {
		case "inside":
			if u.Inside, err = parseDuration(v); err != nil {
				return fmt.Errorf("inside=%s: %v", v, err)
			}
		case "between":
			a, b, isRange := strings.Cut(v, "..")
			if lo, err = parseDuration(a); err == nil {
				hi = lo
				if isRange {
					hi, err = parseDuration(b)
				}
			}
			if err != nil || hi < lo {
				return fmt.Errorf("between=%s: want a duration or an increasing range, such as 40ms or 30ms..80ms", v)
			}
		case "spread":
			if spread, err = parseDuration(v); err != nil || spread <= 0 {
				return fmt.Errorf("spread=%s: want a positive duration, such as 20ms", v)
			}
		case "seed":
			if _, err := fmt.Sscan(v, &seed); err != nil || strings.TrimLeft(v, "0123456789") != "" {
				return fmt.Errorf("seed=%s: want a non-negative integer", v)
			}
		default:
			return fmt.Errorf("regions does not take %s= (options: inside=, between=, spread=, seed=)", k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Each pair of regions gets a latency drawn from [lo, hi], in a fixed
	// order, so the same line and seed give the same underlay.
	sort.Strings(names)
	rng := rand.New(rand.NewPCG(seed, 0x4e61))
	for i, a := range names {
		for _, b := range names[i+1:] {
			l := lo
			if hi > lo {
				l += time.Duration(rng.Int64N(int64(hi-lo) + 1))
			}
			u.Between[[2]string{a, b}] = l.Round(time.Microsecond)
		}
	}
	// With spread=, each region's nodes are placed uniformly at random
	// in a disc of that diameter (in ms of one-way latency), region by
	// region in name order, each in the order given, from the same seed.
	if spread > 0 {
		u.Pos = make(map[string][2]float64, len(u.Region))
		r := float64(spread) / float64(time.Millisecond) / 2
		for _, region := range names {
			for _, n := range members[region] {
				rho, phi := r*math.Sqrt(rng.Float64()), 2*math.Pi*rng.Float64()
				u.Pos[n] = [2]float64{rho * math.Cos(phi), rho * math.Sin(phi)}
			}
		}
	}
	st.Underlay = u
	p.g.regions = true
	return nil
}

// eachOption calls f with each key=value option, refusing a key given
// twice.
func eachOption(opts [][2]string, f func(k, v string) error) error {
	seen := map[string]bool{}
	for _, o := range opts {
		if seen[o[0]] {
			return fmt.Errorf("option %s= given twice", o[0])
		}
		seen[o[0]] = true
		if err := f(o[0], o[1]); err != nil {
			return err
		}
	}
	return nil
}

// nodeList expands "a,b,n1..n9" into names, at most limit of them.
func (p *parser) nodeList(list string, limit int) ([]string, error) {
	var out []string
	for _, w := range strings.Split(list, ",") {
		names, err := expandRange(w, limit-len(out))
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if err := checkName(name); err != nil {
				return nil, err
			}
			out = append(out, name)
		}
	}
	return out, nil
}

// discover parses "discover seed=X nodes=LIST [order=name|random]".
func (p *parser) discover(st *Step, args []string) error {
	const usage = "want discover seed=NODE nodes=NODES [order=name|random], as in discover seed=n1 nodes=n2..n10"
	words, opts, err := splitOptions(args)
	if err != nil {
		return err
	}
	if len(words) > 0 {
		return fmt.Errorf("%s", usage)
	}
	var seed, list string
	st.Order = "name"
	err = eachOption(opts, func(k, v string) error {
		switch k {
		case "seed":
			seed = v
		case "nodes":
			list = v
		case "order":
			if v != "name" && v != "random" {
				return fmt.Errorf("order=%s: want order=name or order=random", v)
			}
			st.Order = v
		default:
			return fmt.Errorf("discover does not take %s= (options: seed=, nodes=, order=)", k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seed == "" || list == "" {
		return fmt.Errorf("%s", usage)
	}
	if err := checkName(seed); err != nil {
		return fmt.Errorf("seed=%s: %v", seed, err)
	}
	switch {
	case p.g.seed != "" && p.g.seed != seed:
		return fmt.Errorf("seed=%s: the seed is %s (one seed per scenario)", seed, p.g.seed)
	case p.declared[seed] && !p.g.members[seed]:
		return fmt.Errorf("seed=%s: the node runs without gossip (declared by nodes, not discover)", seed)
	case !p.declared[seed]:
		if p.nnodes >= MaxNodes {
			return fmt.Errorf("more than %d nodes", MaxNodes)
		}
		p.declare(seed)
	}
	names, err := p.nodeList(list, MaxNodes-p.nnodes)
	if err != nil {
		return fmt.Errorf("nodes=%s: %v", list, err)
	}
	st.Nodes = []string{seed}
	for _, name := range names {
		if p.declared[name] {
			return fmt.Errorf("node %s declared twice", name)
		}
		p.declare(name)
		st.Nodes = append(st.Nodes, name)
	}
	p.g.seed = seed
	return nil
}

// declare records a node started by discover.
func (p *parser) declare(name string) {
	if p.g.members == nil {
		p.g.members = map[string]bool{}
	}
	p.declared[name], p.g.members[name] = true, true
	p.nnodes++
}

// waitGossip parses "wait members|reachable [timeout=D]".
func (p *parser) waitGossip(st *Step, what string, opts [][2]string) error {
	if p.g.seed == "" {
		return fmt.Errorf("wait %s needs nodes started by discover first", what)
	}
	st.Op, st.Duration = OpWaitMembers, DefaultGossipTimeout
	if what == "reachable" {
		st.Op = OpWaitReachable
	}
	return p.options(st, opts, "timeout")
}

// waitReportEvery is how often a long wait members or wait reachable
// prints how far it has come (with a progress writer: --progress).
const waitReportEvery = 10 * time.Second

// gossipStep runs regions, discover, wait members, wait reachable and
// measure.
func (r *runner) gossipStep(ctx context.Context, st Step, res *StepResult) error {
	c := r.c
	switch st.Op {
	case OpRegions:
		return c.SetUnderlay(st.Underlay)
	case OpDiscover:
		r.gossip = true
		names := slices.Clone(st.Nodes[1:])
		if st.Order == "random" {
			rng := rand.New(rand.NewPCG(c.cfg.Seed, 0xd15c))
			rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		}
		return c.Discover(ctx, st.Nodes[0], names...)
	case OpWaitMembers, OpWaitReachable:
		wctx, cancel := context.WithTimeout(ctx, st.Duration)
		defer cancel()
		wait := c.waitMembers
		if st.Op == OpWaitReachable {
			wait = c.waitReachable
		}
		var report func(time.Duration, string)
		if r.progress != nil {
			report = func(d time.Duration, status string) {
				fmt.Fprintf(r.progress, "%4d  ...   %s: %v so far; %s\n", st.Line, st.Text, d.Round(time.Millisecond), status)
			}
		}
		_, err := wait(wctx, waitReportEvery, report)
		return err
	case OpMeasure:
		ms, err := c.MeasureMesh()
		res.Output, res.Mesh = ms.String(), &ms
		if err != nil {
			return err
		}
		l := st.Line
		r.measure("reachable pairs", l, 100*ms.Reachable, "%")
		r.measure("max degree", l, float64(ms.MaxDegree), "links")
		r.measure("mean degree", l, ms.MeanDegree, "links")
		r.measure("diameter", l, float64(ms.Diameter), "hops")
		if ms.StretchPairs > 0 {
			r.measure("path stretch", l, ms.Stretch, "x")
			r.measure("max path stretch", l, ms.MaxStretch, "x")
		}
		r.measure("link churn", l, ms.Churn, "changes/node/min")
		r.measure("gossip messages", l, float64(ms.Gossip.Packets+ms.Gossip.Streams), "messages")
		r.measure("gossip bytes", l, float64(ms.Gossip.PacketBytes+ms.Gossip.StreamBytes), "bytes")
	}
	return nil
}
