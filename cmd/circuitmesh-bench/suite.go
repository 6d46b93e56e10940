package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options size the suite.
type options struct {
	Quick       bool
	Size        int64 // bytes per transfer
	Rounds      int   // interleaved throughput rounds
	ResumePairs int   // pairs of transfers, resumable and not, per k (resumePairs)
	ResumeSize  int64 // bytes per transfer of those pairs
	EchoBatches int   // interleaved open-echo batches ...
	EchoBatch   int   // ... of this many samples each
	PingBatches int
	PingBatch   int
	Idle        int // idle circuits held through the relay
	Reroutes    int // diamonds killed
	Scale       int // idle circuits held through one relay in the scale part (0: not run)
	ProfileDir  string
	Only        string    // "line", "relay", "throughput", "latency", "resume", "reroute" or "scale": run that part only
	Log         io.Writer // role processes' stderr, when set
	Progress    io.Writer // one line per phase
	Tune        tuning
}

func fullOptions() options {
	return options{Size: 256 << 20, Rounds: 5, ResumePairs: 16, ResumeSize: 64 << 20, EchoBatches: 30, EchoBatch: 20, PingBatches: 10, PingBatch: 200,
		Idle: 10000, Reroutes: 3, Scale: 100000}
}

func quickOptions() options {
	return options{Quick: true, Size: 48 << 20, Rounds: 3, ResumePairs: 12, ResumeSize: 16 << 20, EchoBatches: 10, EchoBatch: 20, PingBatches: 5, PingBatch: 100,
		Idle: 10000, Reroutes: 1}
}

// suite is a running measurement: a line of nodes n0-n1-n2-n3-n4 (so a
// circuit from n0 to n(k+1) crosses k relays), a pair of quic-go endpoints
// for the baselines and two naive relays in front of the receiver, each in
// its own process. The sender qc holds three connections: to the receiver
// qs ("", direct), to naive1 (which relays to qs) and to naive2 (which
// relays to naive1): naive relays at k = 1 and 2.
type suite struct {
	o      options
	line   []*proc
	clear  []*proc // x0-x1-x2: a line of nodes with end-to-end security off
	qs, qc *proc   // baseline receiver and sender
	naive  []*proc // naive1 (next hop qs) and naive2 (next hop naive1)
	res    *results
}

const waitRoutes = 30 * time.Second

// runSuite measures everything and returns the results.
func runSuite(o options) (*results, error) {
	start := time.Now()
	s := &suite{o: o, res: &results{
		TransferBytes: o.Size, Rounds: o.Rounds, Quick: o.Quick, Tuning: o.Tune, Machine: machineInfo(),
		IdleCircuits: o.Idle,
	}}
	var err error
	if o.Only == "" || o.Only == "line" || o.Only == "relay" || o.Only == "throughput" || o.Only == "latency" || o.Only == "resume" {
		err = s.runLine()
	}
	if err == nil && (o.Only == "" || o.Only == "reroute") {
		err = s.run(partReroute, s.reroute)
	}
	if err == nil && (o.Only == "" || o.Only == "reroute") {
		err = s.run(partRerouteLive, s.rerouteLive)
	}
	if err == nil && (o.Only == "" || o.Only == "scale") && o.Scale > 0 {
		err = s.run(partScale, s.scale)
	}
	s.res.Seconds = time.Since(start).Seconds()
	return s.res, err
}

// run measures one part of the suite. The part is listed in the results
// before it runs, so that the figures of a part that failed are printed
// as far as it got.
func (s *suite) run(part string, measure func() error) error {
	s.res.Parts = append(s.res.Parts, part)
	return measure()
}

func (s *suite) progress(format string, args ...any) {
	if s.o.Progress != nil {
		fmt.Fprintf(s.o.Progress, format+"\n", args...)
	}
}

func (s *suite) runLine() (err error) {
	defer func() { err = errors.Join(err, s.stopLine()) }()
	s.progress("starting 5 nodes in a line and a quic-go pair")
	for i := range 5 {
		args := append([]string{"node", "--name", nodeName(i)}, s.o.Tune.args()...)
		if i > 0 {
			args = append(args, "--link", s.line[i-1].addr)
		}
		p, err := startProc(nodeName(i), s.o.Log, args...)
		if err != nil {
			return err
		}
		s.line = append(s.line, p)
	}
	for i, name := range []string{"x0", "x1", "x2"} {
		args := append([]string{"node", "--name", name, "-e2e", "off"}, s.o.Tune.args()...)
		if i > 0 {
			args = append(args, "--link", s.clear[i-1].addr)
		}
		p, err := startProc(name, s.o.Log, args...)
		if err != nil {
			return err
		}
		s.clear = append(s.clear, p)
	}
	if s.qs, err = startProc("quic-receiver", s.o.Log, append([]string{"quic"}, s.o.Tune.args()...)...); err != nil {
		return err
	}
	if s.qc, err = startProc("quic-sender", s.o.Log, append([]string{"quic"}, s.o.Tune.args()...)...); err != nil {
		return err
	}
	next := s.qs.addr
	for _, name := range []string{"naive1", "naive2"} {
		p, err := startProc(name, s.o.Log, append([]string{"naive", "--next", next}, s.o.Tune.args()...)...)
		if err != nil {
			return err
		}
		s.naive, next = append(s.naive, p), p.addr
	}
	for peer, p := range map[string]*proc{"": s.qs, "naive1": s.naive[0], "naive2": s.naive[1]} {
		if _, err := s.qc.call(request{Op: "dial", Peer: peer, Addr: p.addr}); err != nil {
			return err
		}
	}
	if _, err := s.line[0].call(request{Op: "wait", Peers: []string{"n1", "n2", "n3", "n4"}, Timeout: int64(waitRoutes)}); err != nil {
		return err
	}
	if _, err := s.line[4].call(request{Op: "wait", Peers: []string{"n0"}, Timeout: int64(waitRoutes)}); err != nil {
		return err
	}
	if _, err := s.clear[0].call(request{Op: "wait", Peers: []string{"x1", "x2"}, Timeout: int64(waitRoutes)}); err != nil {
		return err
	}
	steps := map[string]func() error{
		partThroughput: s.throughput, partResume: s.resumePairs, partLatency: s.latencyIdleBusy,
		partTTFB: s.ttfb, partMemory: s.idleMemory, partOpenRate: s.openRate,
	}
	parts := []string{partThroughput, partResume, partLatency, partTTFB, partMemory, partOpenRate}
	switch s.o.Only {
	case "relay":
		parts = []string{partThroughput, partLatency} // an established circuit's relay against the naive one
	case "throughput":
		parts = []string{partThroughput}
	case "latency":
		parts = []string{partLatency}
	case "resume":
		parts = []string{partResume}
	}
	for _, part := range parts {
		if err := s.run(part, steps[part]); err != nil {
			return err
		}
	}
	rep, err := s.line[0].call(request{Op: "route-losses"})
	s.res.RouteLosses, s.res.LastRouteLoss = rep.RouteLosses, rep.LastRouteLoss
	return err
}

func (s *suite) stopLine() error {
	var errs []error
	for _, p := range append(slices.Concat(s.line, s.clear, s.naive), s.qs, s.qc) {
		if p != nil {
			errs = append(errs, p.stop())
		}
	}
	s.line, s.clear, s.naive, s.qs, s.qc = nil, nil, nil, nil, nil
	return errors.Join(errs...)
}

func nodeName(i int) string { return "n" + strconv.Itoa(i) }

// transfer is one timed bulk transfer.
type transfer struct {
	mbps     float64 // 10^6 bytes per second
	cpuPerGB float64 // CPU seconds per 10^9 bytes: sender+receiver (direct, k0, k0clear) or the first relay (k1, k1clear, naive1)
	sendCPU  float64 // the sender process's CPU seconds per 10^9 bytes
	endsCPU  float64 // sender's and receiver's CPU seconds per 10^9 bytes (direct, k0, k0clear, k1, k1clear, naive1)
}

// transfer sends n bytes over subject: "direct" (quic-go), "k0".."k3",
// "k0clear" (a circuit between two neighbours with end-to-end security
// off), "k1clear" (x0 to x2 through x1, end-to-end security and
// resumption off: the relay carries what a naive relay carries), or
// "naive1", "naive2" (a quic-go stream through one or two naive relays).
func (s *suite) transfer(subject string, n int64) (transfer, error) {
	var meter *proc // whose CPU is counted besides the sender's
	var sender *proc
	var receiver *proc // the receiver, when it is not meter (k1, k1clear, naive1)
	req := request{Op: "send", Bytes: n}
	ends := subject == "direct" || subject == "k0" || subject == "k0clear"
	switch subject {
	case "direct":
		sender, meter = s.qc, s.qs
	case "k0clear":
		sender, meter, req.Peer = s.clear[0], s.clear[1], "x1"
	case "k1clear":
		sender, meter, req.Peer, req.NoResume = s.clear[0], s.clear[1], "x2", true
		receiver = s.clear[2]
	case "naive1":
		sender, meter, req.Peer = s.qc, s.naive[0], "naive1"
		receiver = s.qs
	case "naive2":
		sender, req.Peer = s.qc, "naive2"
	default:
		k, _ := strconv.Atoi(subject[1:])
		sender, req.Peer = s.line[0], nodeName(k+1)
		if k <= 1 {
			meter = s.line[1] // the receiver (k0) or the relay (k1)
		}
		if k == 1 {
			receiver = s.line[2]
		}
	}
	var cpu0, rcpu0 time.Duration
	var err error
	if meter != nil {
		if cpu0, err = meter.cpu(); err != nil {
			return transfer{}, err
		}
	}
	if receiver != nil {
		if rcpu0, err = receiver.cpu(); err != nil {
			return transfer{}, err
		}
	}
	rep, err := sender.call(req)
	if err != nil {
		return transfer{}, err
	}
	t := transfer{mbps: float64(n) / (float64(rep.NS) / 1e9) / 1e6}
	t.sendCPU = time.Duration(rep.CPUNS).Seconds() / (float64(n) / 1e9)
	if receiver != nil {
		rcpu1, err := receiver.cpu()
		if err != nil {
			return transfer{}, err
		}
		t.endsCPU = t.sendCPU + (rcpu1-rcpu0).Seconds()/(float64(n)/1e9)
	}
	if meter != nil {
		cpu1, err := meter.cpu()
		if err != nil {
			return transfer{}, err
		}
		cpu := (cpu1 - cpu0).Seconds()
		if ends {
			cpu += time.Duration(rep.CPUNS).Seconds()
		}
		t.cpuPerGB = cpu / (float64(n) / 1e9)
		if ends {
			t.endsCPU = t.cpuPerGB
		}
	}
	return t, nil
}

var subjects = []string{"direct", "k0", "k1", "k2", "k3", "k0clear", "k1clear", "naive1", "naive2"}

func (s *suite) throughput() error {
	s.progress("throughput: warm-up")
	for _, subj := range subjects {
		if _, err := s.transfer(subj, max(s.o.Size/8, 4<<20)); err != nil {
			return fmt.Errorf("warm-up %s: %w", subj, err)
		}
	}
	if s.o.ProfileDir != "" {
		if err := s.profile("profile-start"); err != nil {
			return err
		}
	}
	mbps := map[string][]float64{}
	ratios := map[string][]float64{}
	var cpuRatios, cpuDirect, cpuRelay, cpuSealed, cpuClear, cpuNaive, cpuVsNaive, r1VsNaive, r1ClearVsNaive, cpuClearVsNaive []float64
	var endsK1, endsK1Clear, endsNaive1 []float64
	for r := range s.o.Rounds {
		got := map[string]transfer{}
		for i := range subjects {
			subj := subjects[(i+r)%len(subjects)] // rotate the order every round
			t, err := s.transfer(subj, s.o.Size)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, subj, err)
			}
			got[subj] = t
			mbps[subj] = append(mbps[subj], t.mbps)
		}
		for k := range 4 {
			key := strconv.Itoa(k)
			ratios[key] = append(ratios[key], got["k"+key].mbps/got["direct"].mbps)
		}
		for k := 1; k <= 2; k++ {
			key := "naive" + strconv.Itoa(k)
			ratios[key] = append(ratios[key], got[key].mbps/got["direct"].mbps)
		}
		r1VsNaive = append(r1VsNaive, got["k1"].mbps/got["naive1"].mbps)
		r1ClearVsNaive = append(r1ClearVsNaive, got["k1clear"].mbps/got["naive1"].mbps)
		cpuClearVsNaive = append(cpuClearVsNaive, got["k1clear"].cpuPerGB/got["naive1"].cpuPerGB)
		cpuNaive = append(cpuNaive, got["naive1"].cpuPerGB)
		cpuVsNaive = append(cpuVsNaive, got["k1"].cpuPerGB/got["naive1"].cpuPerGB)
		cpuDirect = append(cpuDirect, got["direct"].cpuPerGB)
		cpuRelay = append(cpuRelay, got["k1"].cpuPerGB)
		cpuSealed = append(cpuSealed, got["k0"].cpuPerGB)
		cpuClear = append(cpuClear, got["k0clear"].cpuPerGB)
		cpuRatios = append(cpuRatios, got["k1"].cpuPerGB/got["direct"].cpuPerGB)
		endsK1, endsK1Clear = append(endsK1, got["k1"].endsCPU), append(endsK1Clear, got["k1clear"].endsCPU)
		endsNaive1 = append(endsNaive1, got["naive1"].endsCPU)
		s.progress("throughput round %d/%d: MB/s direct %.0f k0 %.0f k1 %.0f k2 %.0f k3 %.0f k1clear %.0f naive1 %.0f naive2 %.0f; relay CPU ratio %.2f, vs naive %.2f (clear ends %.2f); ends CPU s/GB direct %.2f k0 %.2f k0clear %.2f k1 %.2f k1clear %.2f naive1 %.2f",
			r+1, s.o.Rounds, got["direct"].mbps, got["k0"].mbps, got["k1"].mbps, got["k2"].mbps, got["k3"].mbps,
			got["k1clear"].mbps, got["naive1"].mbps, got["naive2"].mbps, cpuRatios[r], cpuVsNaive[r], cpuClearVsNaive[r],
			got["direct"].endsCPU, got["k0"].endsCPU, got["k0clear"].endsCPU, got["k1"].endsCPU, got["k1clear"].endsCPU, got["naive1"].endsCPU)
	}
	if s.o.ProfileDir != "" {
		if err := s.profile("profile-stop"); err != nil {
			return err
		}
	}
	s.res.RK, s.res.RNaive = map[string]float64{}, map[string]float64{}
	for k, v := range ratios {
		if n, ok := strings.CutPrefix(k, "naive"); ok {
			s.res.RNaive[n] = median(v)
		} else {
			s.res.RK[k] = median(v)
		}
	}
	s.res.R1VsNaive, s.res.RelayCPUVsNaive = median(r1VsNaive), median(cpuVsNaive)
	s.res.R1ClearVsNaive, s.res.RelayClearCPUVsNaive = median(r1ClearVsNaive), median(cpuClearVsNaive)
	s.res.ThroughputMBps = map[string]float64{}
	for k, v := range mbps {
		s.res.ThroughputMBps[k] = median(v)
	}
	s.res.RelayCPUPerGBRatio = median(cpuRatios)
	s.res.CPUSecondsPerGB = map[string]float64{"direct": median(cpuDirect), "relay": median(cpuRelay),
		"ends_sealed": median(cpuSealed), "ends_clear": median(cpuClear), "naive_relay": median(cpuNaive),
		"ends_k1": median(endsK1), "ends_k1clear": median(endsK1Clear), "ends_naive1": median(endsNaive1)}
	return nil
}

// profile starts or stops CPU profiles of the first relay, of the
// baseline pair, of the first naive relay, and of the ends of the sealed
// and clear lines (n0 sends k0..k3; n2 receives k1 and relays k2, k3; x0
// sends k0clear and k1clear; x2 receives k1clear).
func (s *suite) profile(op string) error {
	for _, p := range []struct {
		proc *proc
		file string
	}{{s.line[1], "relay-n1.pprof"}, {s.qs, "direct-receiver.pprof"}, {s.qc, "direct-sender.pprof"}, {s.naive[0], "relay-naive1.pprof"},
		{s.line[0], "end-n0.pprof"}, {s.line[2], "end-n2.pprof"}, {s.clear[0], "end-x0.pprof"}, {s.clear[2], "end-x2.pprof"}} {
		if _, err := p.proc.call(request{Op: op, Path: filepath.Join(s.o.ProfileDir, p.file)}); err != nil {
			return err
		}
	}
	return nil
}

// latencyIdleBusy runs the latency measurements twice: on the machine as
// it is, and with one nice-19 busy loop pinned to each core, so that no
// core sits idle when a packet wakes a process (see spinRole).
func (s *suite) latencyIdleBusy() error {
	if err := s.latency("idle", &s.res.latency, s.o.ProfileDir != ""); err != nil {
		return err
	}
	var spin []*proc
	defer func() {
		for _, p := range spin {
			_ = p.stop()
		}
	}()
	for cpu := range runtime.NumCPU() {
		p, err := startProc("spin"+strconv.Itoa(cpu), s.o.Log, "spin", "--cpu", strconv.Itoa(cpu))
		if err != nil {
			return err
		}
		spin = append(spin, p)
	}
	s.res.Busy = &latency{}
	return s.latency(fmt.Sprintf("busy (%d nice-19 busy loops)", len(spin)), s.res.Busy, false)
}

// latency measures open+echo and per-hop round trips into l, with CPU
// profiles of n0, n1, n2 and naive1 during the open+echo rounds, and of
// n1 and naive1 during the round trips, when profile is set.
func (s *suite) latency(label string, l *latency, profile bool) error {
	if profile {
		if err := s.profileOpen("profile-start"); err != nil {
			return err
		}
	}
	err := s.openEcho(label, l)
	if profile {
		err = errors.Join(err, s.profileOpen("profile-stop"))
	}
	if err != nil {
		return err
	}
	if profile {
		if err := s.profileHop("profile-start"); err != nil {
			return err
		}
	}
	err = s.hopRTT(label, l)
	if profile {
		err = errors.Join(err, s.profileHop("profile-stop"))
	}
	if err != nil {
		return err
	}
	if nv := l.OpenEchoUS["naive_k1"]; nv > 0 {
		l.OpenK1VsNaive = l.OpenEchoUS["k1"] / nv
	}
	if l.NaiveHopRTTP50 > 0 {
		l.HopRTTVsNaive = l.HopRTTP50 / l.NaiveHopRTTP50
	}
	return nil
}

// profileOpen starts or stops CPU profiles of the source, the first relay,
// the destination of a k1 circuit and the first naive relay, and execution
// traces of those three nodes, of the first naive relay, of the quic-go
// pair (the naive_k1 source and destination) and of x0 and x1 (the k0clear
// source and destination): the traces show the goroutines an open's bytes
// pass through at each hop, k1 against naive_k1 and k0 against k0clear
// (their clocks are the machine's monotonic clock, so the eight line up,
// and each open the source starts is marked by a log event "open").
func (s *suite) profileOpen(op string) error {
	for _, p := range []*proc{s.line[0], s.line[1], s.line[2], s.naive[0]} {
		path := filepath.Join(s.o.ProfileDir, "open-"+p.name+".pprof")
		if _, err := p.call(request{Op: op, Path: path}); err != nil {
			return err
		}
	}
	traceOp := strings.Replace(op, "profile", "trace", 1)
	for _, p := range []*proc{s.line[0], s.line[1], s.line[2], s.naive[0], s.qc, s.qs, s.clear[0], s.clear[1]} {
		path := filepath.Join(s.o.ProfileDir, "open-"+p.name+".trace")
		if _, err := p.call(request{Op: traceOp, Path: path}); err != nil {
			return err
		}
	}
	return nil
}

// profileHop starts or stops CPU profiles and execution traces of the
// first relay and the first naive relay while echoes cross established
// circuits and streams: the traces show each relay's goroutine hand-offs
// and syscalls per echo.
func (s *suite) profileHop(op string) error {
	traceOp := strings.Replace(op, "profile", "trace", 1)
	for _, p := range []*proc{s.line[1], s.naive[0]} {
		path := filepath.Join(s.o.ProfileDir, "hop-"+p.name)
		if _, err := p.call(request{Op: op, Path: path + ".pprof"}); err != nil {
			return err
		}
		if _, err := p.call(request{Op: traceOp, Path: path + ".trace"}); err != nil {
			return err
		}
	}
	return nil
}

// openPath is the processes an open of key crosses: its source, the
// relays in between and its destination.
func (s *suite) openPath(key string) []*proc {
	switch key {
	case "direct_quic_stream":
		return []*proc{s.qc, s.qs}
	case "k0clear":
		return []*proc{s.clear[0], s.clear[1]}
	case "naive_k1":
		return []*proc{s.qc, s.naive[0], s.qs}
	case "naive_k2":
		return []*proc{s.qc, s.naive[1], s.naive[0], s.qs}
	}
	k, _ := strconv.Atoi(key[1:2]) // k0..k2, k0noresume, k1noresume
	return s.line[:k+2]
}

// cpuTimes reads the CPU time each process of path used so far.
func cpuTimes(path []*proc) ([]time.Duration, error) {
	out := make([]time.Duration, len(path))
	for i, p := range path {
		var err error
		if out[i], err = p.cpu(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// addCPU adds to sum (source, relays, destination) what each process of
// path used between the times before and after.
func addCPU(sum *[3]time.Duration, before, after []time.Duration) {
	for i := range after {
		role := 1
		switch i {
		case 0:
			role = 0
		case len(after) - 1:
			role = 2
		}
		sum[role] += after[i] - before[i]
	}
}

func (s *suite) openEcho(label string, l *latency) error {
	s.progress("open+echo latency, %s", label)
	samples := map[string][]int64{}
	resumed := map[string]int{}           // sealed opens that resumed a session
	cpu := map[string]*[3]time.Duration{} // source, relays, destination
	keys := []string{"direct_quic_stream", "k0", "k1", "k2", "naive_k1", "naive_k2", "k0clear", "k0noresume", "k1noresume"}
	for _, k := range keys {
		cpu[k] = new([3]time.Duration)
	}
	for b := range s.o.EchoBatches {
		for i := range keys {
			key := keys[(i+b)%len(keys)]
			// The CPU the processes on the open's path spend, read
			// around the batch (outside the timed opens).
			path := s.openPath(key)
			before, err := cpuTimes(path)
			if err != nil {
				return err
			}
			var rep reply
			switch key {
			case "direct_quic_stream":
				rep, err = s.qc.call(request{Op: "open-echo", Count: s.o.EchoBatch})
			case "k0clear":
				rep, err = s.clear[0].call(request{Op: "open-echo", Peer: "x1", Count: s.o.EchoBatch})
			case "k0noresume", "k1noresume":
				k, _ := strconv.Atoi(key[1:2])
				rep, err = s.line[0].call(request{Op: "open-echo-noresume", Peer: nodeName(k + 1), Count: s.o.EchoBatch})
			case "naive_k1", "naive_k2":
				rep, err = s.qc.call(request{Op: "open-echo", Peer: "naive" + key[len(key)-1:], Count: s.o.EchoBatch})
			default:
				k, _ := strconv.Atoi(key[1:])
				rep, err = s.line[0].call(request{Op: "open-echo", Peer: nodeName(k + 1), Count: s.o.EchoBatch})
			}
			if err != nil {
				return err
			}
			after, err := cpuTimes(path)
			if err != nil {
				return err
			}
			addCPU(cpu[key], before, after)
			for _, v := range rep.Samples {
				samples[key] = append(samples[key], v...)
			}
			resumed[key] += rep.Resumed
		}
	}
	l.OpenEchoUS, l.OpenEchoP99US = map[string]float64{}, map[string]float64{}
	l.OpenCPUUS = map[string]map[string]float64{}
	for k, v := range samples {
		us := micros(v)
		l.OpenEchoUS[k], l.OpenEchoP99US[k] = median(us), quantile(us, 0.99)
		if n := float64(len(v)); n > 0 {
			c := cpu[k]
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
			l.OpenCPUUS[k] = map[string]float64{"source": per(c[0]), "relays": per(c[1]), "destination": per(c[2])}
		}
	}
	l.OpenResumed = map[string]float64{}
	for _, k := range []string{"k0", "k1", "k2", "k0noresume", "k1noresume"} {
		if n := len(samples[k]); n > 0 {
			l.OpenResumed[k] = float64(resumed[k]) / float64(n)
		}
	}
	s.progress("  sealed opens that resumed a session: k0 %.2f k1 %.2f k2 %.2f k0noresume %.2f k1noresume %.2f",
		l.OpenResumed["k0"], l.OpenResumed["k1"], l.OpenResumed["k2"], l.OpenResumed["k0noresume"], l.OpenResumed["k1noresume"])
	return nil
}

// ttfb measures, from n0, the time to the first byte of a tiny HTTP
// request to n2's web server: directly over TCP, and through a forward of
// n0's to n2/web, one relay (n1) away.
func (s *suite) ttfb() error {
	s.progress("time to first byte through a forward")
	web, err := s.line[2].call(request{Op: "web-addr"})
	if err != nil {
		return err
	}
	rep, err := s.line[0].call(request{Op: "ttfb", Peer: nodeName(2), Addr: web.Addr, Count: s.o.EchoBatches * s.o.EchoBatch})
	if err != nil {
		return err
	}
	s.res.TTFBUS = map[string]float64{}
	for k, v := range rep.Samples {
		s.res.TTFBUS[k] = median(micros(v))
	}
	return nil
}

// hopRTT measures echo round trips on open streams and circuits: direct
// quic-go and through one and two naive relays, circuits through zero to
// two relays, sealed circuits without resumption through zero and one
// relay (n0 to n1 and n2), and circuits with clear ends and no resumption
// through zero and one relay (x0 to x1 and x2), the four batches taking
// turns: k0 - k0noresume is what the resumable layer adds to a round
// trip, k0noresume - k0clear what end-to-end security adds.
func (s *suite) hopRTT(label string, l *latency) error {
	s.progress("round trip per relay, %s", label)
	samples := map[string][]float64{}
	for b := range s.o.PingBatches {
		for i := range 4 {
			var err error
			switch (i + b) % 4 {
			case 3:
				var rep reply
				rep, err = s.line[0].call(request{Op: "ping", Peers: []string{"n1", "n2"}, Count: s.o.PingBatch, NoResume: true})
				samples["k0noresume"] = append(samples["k0noresume"], micros(rep.Samples["n1"])...)
				samples["k1noresume"] = append(samples["k1noresume"], micros(rep.Samples["n2"])...)
			case 2:
				var rep reply
				rep, err = s.clear[0].call(request{Op: "ping", Peers: []string{"x1", "x2"}, Count: s.o.PingBatch, NoResume: true})
				samples["k0clear"] = append(samples["k0clear"], micros(rep.Samples["x1"])...)
				samples["k1clear"] = append(samples["k1clear"], micros(rep.Samples["x2"])...)
			case 0:
				var rep reply
				rep, err = s.qc.call(request{Op: "ping", Peers: []string{"", "naive1", "naive2"}, Count: s.o.PingBatch})
				for _, k := range []string{"direct", "naive1", "naive2"} {
					key := strings.Replace(k, "naive", "naive_k", 1)
					samples[key] = append(samples[key], micros(rep.Samples[k])...)
				}
			default:
				var rep reply
				rep, err = s.line[0].call(request{Op: "ping", Peers: []string{"n1", "n2", "n3"}, Count: s.o.PingBatch})
				for k := range 3 {
					key := "k" + strconv.Itoa(k)
					samples[key] = append(samples[key], micros(rep.Samples[nodeName(k+1)])...)
				}
			}
			if err != nil {
				return err
			}
		}
	}
	l.RTTUS = map[string][2]float64{}
	for k, v := range samples {
		l.RTTUS[k] = [2]float64{median(v), quantile(v, 0.99)}
	}
	l.HopRTTP50 = (l.RTTUS["k2"][0] - l.RTTUS["k0"][0]) / 2
	l.HopRTTP99 = (l.RTTUS["k2"][1] - l.RTTUS["k0"][1]) / 2
	l.NaiveHopRTTP50 = (l.RTTUS["naive_k2"][0] - l.RTTUS["direct"][0]) / 2
	l.NaiveHopRTTP99 = (l.RTTUS["naive_k2"][1] - l.RTTUS["direct"][1]) / 2
	l.ClearHopRTTP50 = l.RTTUS["k1clear"][0] - l.RTTUS["k0clear"][0]
	if naive1 := l.RTTUS["naive_k1"][0] - l.RTTUS["direct"][0]; naive1 > 0 {
		l.ClearHopRTTVsNaive = l.ClearHopRTTP50 / naive1
	}
	return nil
}

// idleMemory holds o.Idle idle circuits through relay n1 (n0 to n2), as
// many quic-go streams through naive1 (to qs) and as many idle quic-go
// streams to qs, 32 opened at a time, and reads the memory the relays and
// the accepting quic-go endpoint hold for them.
func (s *suite) idleMemory() error {
	s.progress("memory: %d idle circuits through a relay, %d idle quic-go streams through a naive relay and to a quic-go endpoint",
		s.o.Idle, s.o.Idle)
	type perStream struct {
		mem, stack, goroutines, rss float64
	}
	// per measures what meter holds and spends per stream while opener
	// opens o.Idle streams to peer through or to it.
	per := func(meter, opener *proc, peer string) (perStream, error) {
		before, err := meter.call(request{Op: "mem"})
		if err != nil {
			return perStream{}, err
		}
		cpu0, err := meter.cpu()
		if err != nil {
			return perStream{}, err
		}
		prof := filepath.Join(s.o.ProfileDir, "hold-"+meter.name+".pprof")
		if s.o.ProfileDir != "" {
			if _, err := meter.call(request{Op: "profile-start", Path: prof}); err != nil {
				return perStream{}, err
			}
		}
		t0 := time.Now()
		if _, err := opener.call(request{Op: "hold", Peer: peer, Count: s.o.Idle, Conc: 32}); err != nil {
			return perStream{}, err
		}
		elapsed := time.Since(t0)
		if s.o.ProfileDir != "" {
			if _, err := meter.call(request{Op: "profile-stop"}); err != nil {
				return perStream{}, err
			}
		}
		cpu1, err := meter.cpu()
		if err != nil {
			return perStream{}, err
		}
		after, err := meter.call(request{Op: "mem"})
		if err != nil {
			return perStream{}, err
		}
		if _, err := opener.call(request{Op: "release"}); err != nil {
			return perStream{}, err
		}
		s.progress("  %s: heap+stack %d → %d bytes (stack %d → %d), RSS %d → %d, %d → %d goroutines; opened in %v, %v CPU",
			meter.name, before.MemBytes, after.MemBytes, before.StackBytes, after.StackBytes, before.RSSBytes, after.RSSBytes,
			before.Goroutines, after.Goroutines, elapsed.Round(time.Millisecond), (cpu1 - cpu0).Round(time.Millisecond))
		n := float64(s.o.Idle)
		delta := func(a, b uint64) float64 { return (float64(b) - float64(a)) / n }
		return perStream{
			mem: delta(before.MemBytes, after.MemBytes), stack: delta(before.StackBytes, after.StackBytes),
			goroutines: delta(uint64(before.Goroutines), uint64(after.Goroutines)), rss: delta(before.RSSBytes, after.RSSBytes),
		}, nil
	}
	r := s.res
	c, err := per(s.line[1], s.line[0], "n2")
	if err != nil {
		return err
	}
	r.IdleCircuitBytes, r.IdleCircuitStackBytes, r.IdleCircuitGoroutines, r.IdleCircuitRSSBytes = c.mem, c.stack, c.goroutines, c.rss
	nv, err := per(s.naive[0], s.qc, "naive1")
	if err != nil {
		return err
	}
	r.NaiveIdleStreamBytes, r.NaiveIdleStreamRSSBytes = nv.mem, nv.rss
	q, err := per(s.qs, s.qc, "")
	r.QUICStreamBytes = q.mem
	return err
}

// openRate opens, echoes one byte on and closes o.Idle circuits (streams)
// through one relay, 32 in flight, and reads the rate and the relay's CPU:
// sealed circuits through n1, circuits through x1 (ends without end-to-end
// security, so that their handshakes do not bound the rate: the relay's
// own cost) and streams through naive1.
func (s *suite) openRate() error {
	s.progress("open rate: %d circuits or streams opened and closed through one relay, 32 in flight", s.o.Idle)
	r := s.res
	r.RelayOpensPerS, r.RelayOpensPerCPUS = map[string]float64{}, map[string]float64{}
	r.OpenRateErrors = map[string]int{}
	for _, c := range []struct {
		key           string
		meter, opener *proc
		peer          string
	}{{"circuit", s.line[1], s.line[0], "n2"}, {"circuit_clear_ends", s.clear[1], s.clear[0], "x2"}, {"naive", s.naive[0], s.qc, "naive1"}} {
		cpu0, err := c.meter.cpu()
		if err != nil {
			return err
		}
		t0 := time.Now()
		// A few failed opens are counted (a link replaced under load);
		// more than openRateMaxFailed of them fail the figure, which the
		// table then reports as missed, and the suite goes on.
		rep, err := c.opener.call(request{Op: "churn", Peer: c.peer, Count: s.o.Idle, Conc: 32, MaxFailed: s.o.Idle / openRateMaxFailed})
		r.OpenRateErrors[c.key] = rep.Failed
		if err != nil {
			r.OpenRateFailures = append(r.OpenRateFailures, fmt.Sprintf("%s: %v", c.key, err))
			s.progress("  %s: failed: %v", c.key, err)
			continue
		}
		if rep.Failed > 0 {
			s.progress("  %s: %d opens failed; last: %s", c.key, rep.Failed, rep.LastFailure)
		}
		elapsed := time.Since(t0)
		cpu1, err := c.meter.cpu()
		if err != nil {
			return err
		}
		n := float64(s.o.Idle)
		r.RelayOpensPerS[c.key] = n / elapsed.Seconds()
		r.RelayOpensPerCPUS[c.key] = n / max((cpu1-cpu0).Seconds(), 1e-9)
		s.progress("  %s: %v, relay %s used %v CPU", c.key, elapsed.Round(time.Millisecond), c.meter.name, (cpu1 - cpu0).Round(time.Millisecond))
	}
	if clear, naive := r.RelayOpensPerCPUS["circuit_clear_ends"], r.RelayOpensPerCPUS["naive"]; naive > 0 {
		r.RelayOpenRateVsNaive = clear / naive
	}
	return nil
}

// openRateMaxFailed: an open rate churn fails when more than one open in
// this many fails.
const openRateMaxFailed = 10

// rerouteTimeout bounds the wait for a circuit after the kill; a run that
// reaches it is reported with this figure and its error.
const rerouteTimeout = 15 * time.Second

// reroute builds a diamond s-{a,b}-d with default settings, kills the
// relay the current path crosses and times the first circuit through the
// other one. It then does the same with link costs pinned so that the
// other relay is a feasible alternate before the kill, which isolates
// failure detection and dial retry from route discovery.
func (s *suite) reroute() error {
	for _, pinned := range []bool{false, true} {
		var runs []float64
		for run := range s.o.Reroutes {
			ms, err := s.rerouteOnce(pinned)
			if errors.Is(err, errNoReroute) {
				s.res.RerouteErrors = append(s.res.RerouteErrors, err.Error())
				ms = float64(rerouteTimeout.Milliseconds())
			} else if err != nil {
				return fmt.Errorf("reroute run %d: %w", run+1, err)
			}
			s.progress("reroute %d/%d (pinned costs %v): %.0f ms", run+1, s.o.Reroutes, pinned, ms)
			runs = append(runs, ms)
		}
		if pinned {
			s.res.RerouteMSPinned = median(runs)
		} else {
			s.res.RerouteRuns, s.res.RerouteMS = runs, median(runs)
		}
	}
	return nil
}

var errNoReroute = errors.New("no circuit through the other relay")

func (s *suite) rerouteOnce(pinned bool) (ms float64, err error) {
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			if p != nil {
				err = errors.Join(err, p.stop())
			}
		}
	}()
	start := func(name string, link ...string) error {
		args := []string{"node", "--default", "--name", name}
		if pinned {
			// Every link costs 10: both paths cost 20 and each relay
			// advertises d at 10, below s's feasibility distance, so
			// the relay not taken is a feasible alternate.
			args = append(args, "--cost", "s=10,a=10,b=10,d=10")
		}
		var addrs []string
		for _, l := range link {
			addrs = append(addrs, procs[l].addr)
		}
		if len(addrs) > 0 {
			args = append(args, "--link", strings.Join(addrs, ","))
		}
		p, err := startProc(name, s.o.Log, args...)
		procs[name] = p
		return err
	}
	for _, step := range [][]string{{"s"}, {"a", "s"}, {"b", "s"}, {"d", "a", "b"}} {
		if err := start(step[0], step[1:]...); err != nil {
			return 0, err
		}
	}
	if _, err := procs["s"].call(request{Op: "wait", Peers: []string{"a", "b", "d"}, Timeout: int64(waitRoutes)}); err != nil {
		return 0, err
	}
	time.Sleep(time.Second) // let both routes settle
	rep, err := procs["s"].call(request{Op: "path", Peer: "d"})
	if err != nil {
		return 0, err
	}
	if len(rep.Path) != 3 {
		return 0, fmt.Errorf("path from s to d is %v, want one relay", rep.Path)
	}
	victim := rep.Path[1]
	t0 := time.Now()
	procs[victim].kill()
	procs[victim] = nil
	rep, err = procs["s"].call(request{Op: "redial", Peer: "d", Timeout: int64(rerouteTimeout)})
	if err != nil {
		routes, _ := procs["s"].call(request{Op: "routes"})
		return 0, fmt.Errorf("%w after killing %s: %v; routes at s: %+v", errNoReroute, victim, err, routes.Routes)
	}
	if slices.Contains(rep.Path, victim) {
		return 0, fmt.Errorf("circuit after killing %s still crosses it: %v", victim, rep.Path)
	}
	return float64(rep.UnixNS-t0.UnixNano()) / 1e6, nil
}
