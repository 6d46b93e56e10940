package simulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Step results.
const (
	StatusOK   = "ok"   // an operation that succeeded
	StatusPass = "pass" // an expectation that held
	StatusFail = "fail" // an expectation that did not hold, or an operation that failed
)

// StepResult is the outcome of one scenario step.
type StepResult struct {
	Line   int    `json:"line"`
	Step   string `json:"step"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Elapsed is how long the step ran (for an expectation: until it held).
	Elapsed time.Duration `json:"elapsed_ns"`
	// Wall is how long the step really took; it differs from Elapsed in
	// virtual time (Report.Virtual).
	Wall time.Duration `json:"wall_ns"`
	// SinceChange is, for wait converged and expectations, the time from
	// the start of the last step that changed the topology (ChangeLine) to
	// the moment the condition held.
	SinceChange time.Duration `json:"since_change_ns,omitempty"`
	ChangeLine  int           `json:"change_line,omitempty"`
	// Stretch compares, for a wait converged that held, the routes with
	// the shortest paths at that moment (Cluster.RouteStretch).
	Stretch *Stretch `json:"stretch,omitempty"`
	// Transfer measures a transfer step.
	Transfer *TransferResult `json:"transfer,omitempty"`
	// Workload measures a workload step.
	Workload *WorkloadResult `json:"workload,omitempty"`
	// Mesh is what a measure step measured (Output has it as text).
	Mesh *MeshStats `json:"mesh,omitempty"`
	// Output is what a print step printed.
	Output string `json:"output,omitempty"`
	// State is, for a failed step, every node's latest events, links and
	// routes when it failed (Cluster.WriteState).
	State string `json:"state,omitempty"`

	waited bool // an expectation that did not hold at once
}

// Measurement is one figure of a run, for tables and comparisons.
type Measurement struct {
	// Name is convergence (after a change), reroute (an expectation that
	// held after a fault), throughput or open (a transfer's Dial).
	Name  string  `json:"name"`
	Line  int     `json:"line"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"` // ms or MiB/s
}

// Report is the outcome of a scenario run.
type Report struct {
	Script  string  `json:"script"`
	Backend Backend `json:"backend"`
	Passed  int     `json:"passed"` // expectations that held
	Failed  int     `json:"failed"` // failed expectations and operations
	// Virtual reports a run in virtual time (see Test): every duration
	// but the Wall ones is then virtual.
	Virtual  bool          `json:"virtual"`
	Duration time.Duration `json:"duration_ns"`
	// Wall is how long the run really took.
	Wall time.Duration `json:"wall_ns"`
	// Teardown is how long closing the cluster took after the last step
	// (not part of Duration), and TeardownWall how long it really took.
	Teardown     time.Duration `json:"teardown_ns"`
	TeardownWall time.Duration `json:"teardown_wall_ns"`
	Steps        []StepResult  `json:"steps"`
	Measurements []Measurement `json:"measurements"`
}

// OK reports whether every step succeeded and every expectation held.
func (r *Report) OK() bool { return r.Failed == 0 }

// Run runs the scenario on a new cluster configured by cfg and closes the
// cluster. Failed expectations and operations are recorded in the report
// and the run goes on; the error is for a cluster that could not be
// created or a cancelled ctx. progress, when not nil, receives one line
// per step as it finishes.
func Run(ctx context.Context, s *Script, cfg Config, progress io.Writer) (rep *Report, err error) {
	return run(ctx, s, cfg, runOptions{progress: progress})
}

// runOptions are run's options beyond Run's.
type runOptions struct {
	progress io.Writer
	virtual  bool // the report is of a run in virtual time
	// last, when set, sees the cluster after the last step, before Close.
	last func(*Cluster)
	// wall, when set (with progress), gets the steps' reports of how far
	// they have come, to call them on the real clock.
	wall *wallReporter
}

// run is Run with options.
func run(ctx context.Context, s *Script, cfg Config, o runOptions) (rep *Report, err error) {
	progress := o.progress
	cfg.setDefaults()
	if o.virtual && cfg.Backend == BackendMem && !cfg.Unordered {
		cfg.Ordered = true
	}
	c, err := NewCluster(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close the cluster: %w", cerr)
		}
	}()
	r := &runner{c: c, rep: &Report{Script: s.Name, Backend: cfg.Backend, Virtual: o.virtual}, progress: progress, wall: o.wall}
	start, wallStart := time.Now(), wallNow()
	for _, st := range s.Steps {
		if err := ctx.Err(); err != nil {
			return r.rep, fmt.Errorf("scenario %s stopped at line %d: %w", s.Name, st.Line, err)
		}
		res := r.step(ctx, st)
		r.rep.Steps = append(r.rep.Steps, res)
		switch res.Status {
		case StatusPass:
			r.rep.Passed++
		case StatusFail:
			r.rep.Failed++
		}
		if progress != nil {
			mem := memoryNote(len(c.Names()))
			if mem != "" {
				mem = "  [" + mem + "]"
			}
			fmt.Fprintf(progress, "%4d  %-4s  %s%s%s\n", res.Line, res.Status, res.Step, resultNote(res, r.rep.Virtual), mem)
			if res.Mesh != nil {
				// What a measure step measured, also here: a long run
				// interrupted later prints no report.
				for _, l := range strings.Split(strings.TrimRight(res.Output, "\n"), "\n") {
					fmt.Fprintf(progress, "      %s\n", l)
				}
			}
		}
	}
	r.rep.Duration, r.rep.Wall = time.Since(start), wallNow()-wallStart
	if o.last != nil {
		o.last(c)
	}
	start, wallStart = time.Now(), wallNow()
	if err := c.Close(); err != nil {
		return r.rep, fmt.Errorf("close the cluster: %w", err)
	}
	r.rep.Teardown, r.rep.TeardownWall = time.Since(start), wallNow()-wallStart
	return r.rep, nil
}

// failureEvents is how many of each node's latest events a failed step
// keeps in its State.
const failureEvents = 30

type runner struct {
	c          *Cluster
	rep        *Report
	lastChange time.Time
	changeLine int
	changeOp   Op
	changeEnd  time.Time // when the last change step ended
	gossip     bool      // a discover step ran: partitions split the underlay
	progress   io.Writer // nil: no progress lines
	wall       *wallReporter
}

func (r *runner) step(ctx context.Context, st Step) StepResult {
	res := StepResult{Line: st.Line, Step: st.Text, Status: StatusOK}
	start, wallStart := time.Now(), wallNow()
	if st.Op.changesTopology() {
		r.lastChange, r.changeLine, r.changeOp = start, st.Line, st.Op
	}
	err := r.do(ctx, st, &res)
	res.Elapsed, res.Wall = time.Since(start), wallNow()-wallStart
	switch {
	case err != nil:
		res.Status, res.Error = StatusFail, err.Error()
		var state strings.Builder
		if err := r.c.WriteState(&state, failureEvents); err == nil {
			res.State = state.String()
		}
	case st.Op == OpExpectRoute || st.Op == OpExpectUnreachable:
		res.Status = StatusPass
	}
	// Times are measured from the last change; an expectation that held
	// at once measures nothing.
	if st.Op.changesTopology() {
		r.changeEnd = time.Now()
	}
	gossipWait := st.Op == OpWaitMembers || st.Op == OpWaitReachable
	if err == nil && (st.Op == OpWaitConverged || st.Op == OpWaitOptimal || gossipWait || res.Status == StatusPass) && r.changeLine > 0 {
		res.SinceChange, res.ChangeLine = time.Since(r.lastChange), r.changeLine
		switch {
		case st.Op == OpWaitConverged:
			r.measure("convergence", st.Line, ms(res.SinceChange), "ms")
			r.measureSetup(st.Line, "convergence")
		case st.Op == OpWaitOptimal:
			r.measure("optimal", st.Line, ms(res.SinceChange), "ms")
			r.measureSetup(st.Line, "optimal")
		case st.Op == OpWaitMembers:
			r.measure("members known", st.Line, ms(res.SinceChange), "ms")
		case st.Op == OpWaitReachable:
			r.measure("all reachable", st.Line, ms(res.SinceChange), "ms")
		case res.waited && r.changeOp.isFault():
			r.measure("reroute", st.Line, ms(res.SinceChange), "ms")
		case res.waited:
			r.measure("route", st.Line, ms(res.SinceChange), "ms")
		}
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *runner) measure(name string, line int, v float64, unit string) {
	r.rep.Measurements = append(r.rep.Measurements, Measurement{Name: name, Line: line, Value: v, Unit: unit})
}

// do runs one step; an error fails it.
func (r *runner) do(ctx context.Context, st Step, res *StepResult) error {
	c := r.c
	switch st.Op {
	case OpNodes:
		return c.AddNodes(ctx, st.Nodes...)
	case OpLink, OpRandom:
		return c.linkAll(ctx, st.Edges, st.Params)
	case OpUnlink, OpCut, OpSet:
		for _, e := range st.Edges {
			if err := r.edgeOp(st, e); err != nil {
				return err
			}
		}
	case OpHeal:
		if len(st.Edges) == 0 {
			if err := c.HealUnderlay(); err != nil {
				return err
			}
		}
		return c.Heal(st.Edges...)
	case OpPartition:
		if err := c.Partition(st.Sets[0], st.Sets[1]); err != nil {
			return err
		}
		if r.gossip {
			return c.PartitionUnderlay(st.Sets[0], st.Sets[1])
		}
	case OpIsolate:
		return c.Isolate(st.Nodes[0])
	case OpKill:
		for _, n := range st.Nodes {
			if err := c.Kill(n); err != nil {
				return err
			}
		}
	case OpRestart:
		for _, n := range st.Nodes {
			if err := c.Restart(ctx, n); err != nil {
				return err
			}
		}
	case OpWait:
		return r.wait(ctx, st)
	case OpWaitConverged:
		wctx, cancel := context.WithTimeout(ctx, st.Duration)
		defer cancel()
		var report func(time.Duration, string)
		if r.progress != nil {
			line, text, wall0 := st.Line, st.Text, wallNow()
			report = func(d time.Duration, status string) {
				fmt.Fprintf(r.progress, "%4d  ...   %s: %v so far (%v wall); %s; %s  [%s]\n", line, text,
					d.Round(time.Millisecond), (wallNow() - wall0).Round(time.Second), status, c.reachProgress(), memoryNote(len(c.Names())))
			}
			// Called from outside the bubble, on the real clock: no
			// virtual time (time.Now there is real), no table read.
			r.wall.set(func() {
				fmt.Fprintf(r.progress, "%4d  ...   %s: %v wall; %s  [%s]\n", line, text,
					(wallNow() - wall0).Round(time.Second), c.reachProgress(), memoryNote(len(c.Names())))
			})
			defer r.wall.set(nil)
		}
		st, err := c.waitConvergedStretch(wctx, report)
		if err != nil {
			return err
		}
		res.Stretch = st
		r.measure("longer routes", res.Line, float64(st.Longer), "routes")
		r.measure("stretch", res.Line, st.MaxRatio, "x")
	case OpExpectRoute, OpExpectUnreachable:
		waited, err := r.expect(ctx, st)
		res.waited = waited
		return err
	case OpTransfer:
		tctx, cancel := context.WithTimeout(ctx, st.Duration)
		defer cancel()
		t, err := c.Transfer(tctx, st.Nodes[0], st.Nodes[1], st.Size)
		if err != nil {
			return err
		}
		res.Transfer = &t
		// In virtual time in-memory links move bytes in no time at all:
		// there is no rate to report.
		if t.Duration > 0 {
			r.measure("throughput", st.Line, t.Throughput()/(1<<20), "MiB/s")
		}
		r.measure("open", st.Line, ms(t.Open), "ms")
	case OpWaitOptimal:
		wctx, cancel := context.WithTimeout(ctx, st.Duration)
		defer cancel()
		st, err := c.waitOptimal(wctx)
		res.Stretch = &st
		return err
	case OpWorkload:
		w, err := c.Workload(ctx, *st.Workload)
		if err != nil {
			return err
		}
		res.Workload = &w
		r.measureWorkload(st.Line, w)
		if w.Succeeded < w.Circuits {
			return fmt.Errorf("%d of %d circuits failed", w.Circuits-w.Succeeded, w.Circuits)
		}
	case OpRegions, OpDiscover, OpWaitMembers, OpWaitReachable, OpMeasure:
		return r.gossipStep(ctx, st, res)
	case OpPrint:
		out, err := r.print(st)
		res.Output = out
		return err
	default:
		return fmt.Errorf("line %d: unknown operation %v", st.Line, st.Op)
	}
	return nil
}

func (r *runner) edgeOp(st Step, e [2]string) error {
	switch st.Op {
	case OpUnlink:
		return r.c.Unlink(e[0], e[1])
	case OpCut:
		return r.c.Cut(e[0], e[1])
	}
	p, err := r.c.edgeParams(e[0], e[1])
	if err != nil {
		return err
	}
	if st.SetLatency {
		p.Latency = st.Params.Latency
	}
	if st.SetLoss {
		p.Loss = st.Params.Loss
	}
	setShape(&p, st)
	return r.c.SetLink(e[0], e[1], p)
}

// expect polls the expectation until it holds or its time is up. waited
// reports that it did not hold at once.
func (r *runner) expect(ctx context.Context, st Step) (waited bool, err error) {
	from, to := st.Nodes[0], st.Nodes[1]
	check := func() error {
		p, ok, err := r.c.Route(from, to)
		switch {
		case err != nil:
			return err
		case st.Op == OpExpectUnreachable:
			if ok {
				return fmt.Errorf("%s still reaches %s (next hop %s, %d hops)", from, to, p.NextHop, p.Hops)
			}
			return nil
		case !ok:
			return fmt.Errorf("%s does not reach %s", from, to)
		case st.Hops > 0 && p.Hops != st.Hops:
			return fmt.Errorf("%s reaches %s in %d hops, want %d (next hop %s)", from, to, p.Hops, st.Hops, p.NextHop)
		case st.Via != "" && p.NextHop != st.Via:
			return fmt.Errorf("%s reaches %s via %s, want via %s", from, to, p.NextHop, st.Via)
		}
		return nil
	}
	if check() == nil {
		return false, nil
	}
	ectx, cancel := context.WithTimeout(ctx, st.Duration)
	defer cancel()
	err = poll(ectx, check)
	if err != nil && st.Duration > 0 {
		return true, fmt.Errorf("%w, for %v", err, st.Duration)
	}
	return true, err
}

// print renders a node's routes, links or events.
func (r *runner) print(st Step) (string, error) {
	name := st.Nodes[0]
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	switch st.What {
	case "routes":
		peers, err := r.c.Peers(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(tw, "PEER\tREACHABLE\tNEXT HOP\tHOPS\tCOST")
		for _, p := range peers {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%d\t%d\n", p.Name, p.Reachable, p.NextHop, p.Hops, p.Cost)
		}
	case "links":
		ls, err := r.c.Links(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(tw, "PEER\tRTT\tLOSS\tCOST\tSTREAMS")
		for _, l := range ls {
			fmt.Fprintf(tw, "%s\t%v\t%.3f\t%d\t%d\n", l.Peer, l.RTT.Round(10*time.Microsecond), l.Loss, l.Cost, l.Streams)
		}
	case "events":
		evs, err := r.c.Events(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(tw, "TIME\tEVENT\tPEER\tERROR")
		for _, e := range evs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.Format("15:04:05.000"), e.Kind, e.Peer, e.Err)
		}
	}
	if err := tw.Flush(); err != nil {
		return "", errors.Join(errors.New("render"), err)
	}
	return b.String(), nil
}

// waitStep is how much of a plain wait passes between two updates of
// what its wall-clock progress line reports.
const waitStep = time.Second

// wait runs a plain "wait D". With progress lines its wall-clock
// reporter says how much of D has passed: in virtual time a minute's wait
// of a thousand nodes takes many minutes of wall time.
func (r *runner) wait(ctx context.Context, st Step) error {
	end := time.Now().Add(st.Duration)
	var waited atomic.Int64 // of st.Duration, as seen inside the bubble
	if r.progress != nil {
		line, text, wall0 := st.Line, st.Text, wallNow()
		// Called from outside the bubble, on the real clock: it reads
		// only waited.
		r.wall.set(func() {
			fmt.Fprintf(r.progress, "%4d  ...   %s: %v of %v so far (%v wall)  [%s]\n", line, text,
				time.Duration(waited.Load()).Round(time.Millisecond), st.Duration,
				(wallNow() - wall0).Round(time.Second), memoryNote(len(r.c.Names())))
		})
		defer r.wall.set(nil)
	}
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		select {
		case <-time.After(min(left, waitStep)):
			waited.Store(int64(st.Duration - max(time.Until(end), 0)))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
