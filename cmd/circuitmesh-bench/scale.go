package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The scale part holds many idle circuits through one relay (100,000 in
// the full suite) and measures what the relay holds for each, then the
// rate at which circuits open through that relay while they stay open,
// against the naive relay's in the same run.
//
// It runs its own line of three nodes s0-s1-s2, started with a circuit and
// QUIC stream limit per link and per source (--max-streams) above the
// count: the default limits (node.Limits) would refuse circuits long
// before. The ends run with end-to-end security off, so that opening the
// circuits is not bound by their handshakes and the ends do not keep a
// session and a retransmit buffer per circuit: the relay sees the same
// either way (it splices sealed records as bytes and keeps no per-circuit
// crypto state), which the suite's 10,000 sealed idle circuits through n1
// cross-check.

// scaleResult is what the scale part measured.
type scaleResult struct {
	// Requested is the number of idle circuits asked for; Circuits the
	// number held. They differ when holding Requested would have left the
	// machine less than minAvailable of memory: the per-circuit figures are
	// then measured at Circuits and Extrapolated is set.
	Requested    int  `json:"requested"`
	Circuits     int  `json:"circuits"`
	Extrapolated bool `json:"extrapolated"`
	// MemAvailableBytes is the machine's MemAvailable before the part.
	MemAvailableBytes uint64 `json:"mem_available_bytes"`
	// BytesPerCircuit is the relay's heap+stack growth per idle circuit,
	// StackBytesPerCircuit its stack share, RSSBytesPerCircuit the growth
	// of its resident set and GoroutinesPerCircuit that of its goroutines.
	BytesPerCircuit      float64 `json:"bytes_per_circuit_at_relay"`
	StackBytesPerCircuit float64 `json:"stack_bytes_per_circuit_at_relay"`
	RSSBytesPerCircuit   float64 `json:"rss_bytes_per_circuit_at_relay"`
	GoroutinesPerCircuit float64 `json:"goroutines_per_circuit_at_relay"`
	// HoldSeconds is how long opening them took (64 in flight) and
	// HoldRelayCPUSeconds the relay's CPU meanwhile.
	HoldSeconds         float64 `json:"hold_s"`
	HoldRelayCPUSeconds float64 `json:"hold_relay_cpu_s"`
	// OpensPerS and OpensPerRelayCPUS are the churn rates (open, echo one
	// byte, close; 32 in flight) through the relay with the circuits held,
	// "circuit" through s1 and "naive" through a naive relay, per second
	// and per CPU second of the relay; OpenRateVsNaive is the ratio of the
	// per-CPU-second figures (the median over interleaved rounds).
	OpensPerS         map[string]float64 `json:"opens_per_s"`
	OpensPerRelayCPUS map[string]float64 `json:"opens_per_relay_cpu_s"`
	OpenRateVsNaive   float64            `json:"open_rate_vs_naive"`
	Seconds           float64            `json:"seconds"`
}

const (
	// minScale is the fewest circuits the part measures per-circuit
	// figures with.
	minScale = 1000
	// minAvailable is the memory the scale part leaves the machine.
	minAvailable = 6 << 30
	// scaleBytesEstimate bounds what the three nodes hold per idle
	// circuit between them (relay and two ends), for sizing the run.
	scaleBytesEstimate = 48 << 10
	// scaleChurn is the circuits (streams) opened per churn round, at
	// most (a tenth of the circuits held, at least 100, for small runs).
	scaleChurn = 5000
	// scaleChurnRounds is the interleaved churn rounds per subject.
	scaleChurnRounds = 2
)

// scaleCount is how many circuits a run can hold with avail bytes of
// memory available, at most want.
func scaleCount(want int, avail uint64) int {
	if avail <= minAvailable {
		return 0
	}
	return min(want, int((avail-minAvailable)/scaleBytesEstimate))
}

// memAvailable reads MemAvailable from /proc/meminfo.
func memAvailable() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("meminfo: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("meminfo: %q: %w", sc.Text(), err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("meminfo: no MemAvailable line")
}

// scale runs the scale part into s.res.Scale.
func (s *suite) scale() (err error) {
	start := time.Now()
	if s.o.Scale < minScale {
		return fmt.Errorf("scale: %d circuits asked; the part needs at least %d", s.o.Scale, minScale)
	}
	avail, err := memAvailable()
	if err != nil {
		return err
	}
	r := &scaleResult{Requested: s.o.Scale, MemAvailableBytes: avail}
	r.Circuits = scaleCount(s.o.Scale, avail)
	r.Extrapolated = r.Circuits < r.Requested
	if r.Circuits < minScale {
		return fmt.Errorf("scale: %d MiB available leaves room for %d idle circuits only", avail>>20, r.Circuits)
	}
	s.progress("scale: %d idle circuits through one relay (asked %d; %d MiB available), then churn through it and a naive relay",
		r.Circuits, r.Requested, avail>>20)
	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			// A node holding many circuits takes a while to close them.
			p := procs[i]
			p.stdin.Close()
			select {
			case <-p.done:
			case <-time.After(2 * time.Minute):
			}
			err = errors.Join(err, p.stop())
		}
	}()
	start1 := func(name string, args ...string) (*proc, error) {
		p, err := startProc(name, s.o.Log, args...)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	tune := s.o.Tune
	tune.MaxStreams = max(tune.MaxStreams, r.Circuits+2*scaleChurn)
	var line []*proc
	for i, name := range []string{"s0", "s1", "s2"} {
		args := append([]string{"node", "--name", name, "-e2e", "off"}, tune.args()...)
		if i > 0 {
			args = append(args, "--link", line[i-1].addr)
		}
		p, err := start1(name, args...)
		if err != nil {
			return err
		}
		line = append(line, p)
	}
	qs, err := start1("scale-quic-receiver", append([]string{"quic"}, s.o.Tune.args()...)...)
	if err != nil {
		return err
	}
	naive, err := start1("scale-naive", append([]string{"naive", "--next", qs.addr}, s.o.Tune.args()...)...)
	if err != nil {
		return err
	}
	qc, err := start1("scale-quic-sender", append([]string{"quic"}, s.o.Tune.args()...)...)
	if err != nil {
		return err
	}
	if _, err := qc.call(request{Op: "dial", Peer: "naive", Addr: naive.addr}); err != nil {
		return err
	}
	if _, err := line[0].call(request{Op: "wait", Peers: []string{"s1", "s2"}, Timeout: int64(waitRoutes)}); err != nil {
		return err
	}
	relay, src := line[1], line[0]
	// One churn round first: pools and tables warm, as in steady use.
	if _, err := src.call(request{Op: "churn", Peer: "s2", Count: 1000, Conc: 32}); err != nil {
		return fmt.Errorf("scale: warm-up: %w", err)
	}
	before, err := relay.call(request{Op: "mem"})
	if err != nil {
		return err
	}
	cpu0, err := relay.cpu()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if _, err := src.call(request{Op: "hold", Peer: "s2", Count: r.Circuits, Conc: 64}); err != nil {
		return fmt.Errorf("scale: hold %d circuits: %w", r.Circuits, err)
	}
	r.HoldSeconds = time.Since(t0).Seconds()
	cpu1, err := relay.cpu()
	if err != nil {
		return err
	}
	r.HoldRelayCPUSeconds = (cpu1 - cpu0).Seconds()
	after, err := relay.call(request{Op: "mem"})
	if err != nil {
		return err
	}
	n := float64(r.Circuits)
	delta := func(a, b uint64) float64 { return (float64(b) - float64(a)) / n }
	r.BytesPerCircuit = delta(before.MemBytes, after.MemBytes)
	r.StackBytesPerCircuit = delta(before.StackBytes, after.StackBytes)
	r.RSSBytesPerCircuit = delta(before.RSSBytes, after.RSSBytes)
	r.GoroutinesPerCircuit = delta(uint64(before.Goroutines), uint64(after.Goroutines))
	s.progress("  s1: heap+stack %d → %d bytes, RSS %d → %d, %d → %d goroutines; held in %.1fs, %.1fs relay CPU",
		before.MemBytes, after.MemBytes, before.RSSBytes, after.RSSBytes, before.Goroutines, after.Goroutines,
		r.HoldSeconds, r.HoldRelayCPUSeconds)

	// Churn with the circuits held, circuits and naive streams taking turns.
	type subject struct {
		key           string
		meter, opener *proc
		peer          string
	}
	subjects := []subject{{"circuit", relay, src, "s2"}, {"naive", naive, qc, "naive"}}
	churnN := min(scaleChurn, max(r.Circuits/10, 100))
	elapsed, cpu := map[string]time.Duration{}, map[string]time.Duration{}
	var ratios []float64
	for round := range scaleChurnRounds {
		perCPU := map[string]float64{}
		for i := range subjects {
			c := subjects[(i+round)%len(subjects)]
			c0, err := c.meter.cpu()
			if err != nil {
				return err
			}
			profiled := s.o.ProfileDir != "" && round == 0
			if profiled {
				if err := s.scaleProfile("profile-start", c.meter, c.opener); err != nil {
					return err
				}
			}
			t := time.Now()
			if _, err := c.opener.call(request{Op: "churn", Peer: c.peer, Count: churnN, Conc: 32}); err != nil {
				return fmt.Errorf("scale: churn %s: %w", c.key, err)
			}
			d := time.Since(t)
			if profiled {
				if err := s.scaleProfile("profile-stop", c.meter, c.opener); err != nil {
					return err
				}
			}
			c1, err := c.meter.cpu()
			if err != nil {
				return err
			}
			elapsed[c.key] += d
			cpu[c.key] += c1 - c0
			perCPU[c.key] = float64(churnN) / max((c1-c0).Seconds(), 1e-9)
		}
		ratios = append(ratios, perCPU["circuit"]/perCPU["naive"])
	}
	r.OpensPerS, r.OpensPerRelayCPUS = map[string]float64{}, map[string]float64{}
	for _, c := range subjects {
		total := float64(churnN * scaleChurnRounds)
		r.OpensPerS[c.key] = total / elapsed[c.key].Seconds()
		r.OpensPerRelayCPUS[c.key] = total / max(cpu[c.key].Seconds(), 1e-9)
	}
	r.OpenRateVsNaive = median(ratios)
	s.progress("  churn with %d held: circuits %.0f/s (%.0f per relay CPU s), naive %.0f/s (%.0f)",
		r.Circuits, r.OpensPerS["circuit"], r.OpensPerRelayCPUS["circuit"], r.OpensPerS["naive"], r.OpensPerRelayCPUS["naive"])
	if _, err := src.call(request{Op: "release"}); err != nil {
		return err
	}
	r.Seconds = time.Since(start).Seconds()
	s.res.Scale = r
	return nil
}

// scaleProfile starts or stops CPU profiles of the processes ps
// (scale-churn-NAME.pprof in the profile directory).
func (s *suite) scaleProfile(op string, ps ...*proc) error {
	for _, p := range ps {
		path := filepath.Join(s.o.ProfileDir, "scale-churn-"+p.name+".pprof")
		if _, err := p.call(request{Op: op, Path: path}); err != nil {
			return err
		}
	}
	return nil
}

// goals are the scale part's lines of the goals table (none when it did
// not run).
func (r *scaleResult) goals() []goal {
	if r == nil {
		return nil
	}
	f0 := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	name := fmt.Sprintf("scale: rss_bytes_per_circuit_at_relay (%d idle)", r.Circuits)
	return []goal{
		{name: name, value: f0(r.RSSBytesPerCircuit), target: "≤ 16384", met: r.RSSBytesPerCircuit <= 16384, hasGoal: true},
		{name: "scale: bytes_per_circuit_at_relay (heap+stack)", value: f0(r.BytesPerCircuit)},
		{name: "scale: open_rate_vs_naive (opens per relay CPU s)", value: f2(r.OpenRateVsNaive), target: "≥ 1.00", met: r.OpenRateVsNaive >= 1, hasGoal: true},
	}
}

// print writes the scale part's raw figures.
func (r *scaleResult) print(w io.Writer) {
	if r == nil {
		return
	}
	note := ""
	if r.Extrapolated {
		note = fmt.Sprintf(" (asked %d: memory; per-circuit figures hold for more)", r.Requested)
	}
	fmt.Fprintf(w, "scale: %d idle circuits through s1%s: %.0f bytes heap+stack (%.0f stack), RSS %.0f, %.1f goroutines per circuit; held in %.1fs (%.1fs relay CPU)\n",
		r.Circuits, note, r.BytesPerCircuit, r.StackBytesPerCircuit, r.RSSBytesPerCircuit, r.GoroutinesPerCircuit, r.HoldSeconds, r.HoldRelayCPUSeconds)
	fmt.Fprintf(w, "scale: opens with them held, 32 in flight: circuits %.0f/s (%.0f per relay CPU s), naive %.0f/s (%.0f); %.0fs\n",
		r.OpensPerS["circuit"], r.OpensPerRelayCPUS["circuit"], r.OpensPerS["naive"], r.OpensPerRelayCPUS["naive"], r.Seconds)
}
