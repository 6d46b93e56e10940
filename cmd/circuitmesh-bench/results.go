package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"
)

// results is what bench-results.json holds. Every figure is measured in the
// same run as its baseline; ratios and medians are over interleaved rounds.
type results struct {
	// RK maps k ("0".."3") to the throughput of a circuit through k relays
	// divided by a direct quic-go stream between two processes (median of
	// the per-round ratios).
	RK map[string]float64 `json:"r_k"`
	// RelayCPUPerGBRatio is the relay process's CPU seconds per GB
	// forwarded (k=1) over the direct sender's plus receiver's CPU seconds
	// per GB.
	RelayCPUPerGBRatio float64 `json:"relay_cpu_per_gb_ratio"`
	// RNaive maps k ("1", "2") to the throughput of a quic-go stream
	// through k naive relays (the naive role) over the direct stream.
	RNaive map[string]float64 `json:"r_naive"`
	// R1VsNaive is the throughput of a circuit through one relay over
	// that of a stream through one naive relay (median of per-round
	// ratios); RelayCPUVsNaive the relay's CPU per GB over the naive
	// relay's.
	R1VsNaive       float64 `json:"r1_vs_naive"`
	RelayCPUVsNaive float64 `json:"relay_cpu_vs_naive"`
	// R1ClearVsNaive and RelayClearCPUVsNaive are the same for a circuit
	// through x1 whose ends run neither end-to-end security nor
	// resumption (k1clear), so that the ends cost what the quic-go pair
	// costs and the relay carries what a naive relay carries.
	R1ClearVsNaive       float64 `json:"r1_clear_vs_naive"`
	RelayClearCPUVsNaive float64 `json:"relay_clear_cpu_vs_naive"`
	// The latency figures on the machine as it is (flattened into the top
	// level) and with a busy loop at nice 19 pinned to every core (Busy).
	latency
	Busy *latency `json:"busy"`
	// Resumable circuits: on against off, and the live reroute.
	resumeResults
	// TTFBUS is the median time from connect to the status line of a tiny
	// HTTP request: "direct_tcp" to the server, "forward_k1" through a
	// forward over one relay to it.
	TTFBUS map[string]float64 `json:"ttfb_us"`
	// IdleCircuitBytes is the relay's heap+stack in use per idle circuit
	// held open through it.
	IdleCircuitBytes float64 `json:"idle_circuit_bytes_at_relay"`
	// IdleCircuitStackBytes and IdleCircuitGoroutines are the stack share
	// of that figure and the goroutines per idle circuit at the relay.
	IdleCircuitStackBytes float64 `json:"idle_circuit_stack_bytes_at_relay"`
	IdleCircuitGoroutines float64 `json:"idle_circuit_goroutines_at_relay"`
	IdleCircuits          int     `json:"idle_circuits"`
	// IdleCircuitRSSBytes is the growth of the relay's resident set per
	// idle circuit (what the OS sees, runtime overhead included).
	IdleCircuitRSSBytes float64 `json:"idle_circuit_rss_bytes_at_relay"`
	// NaiveIdleStream(RSS)Bytes are the same figures for an idle stream
	// through the naive relay.
	NaiveIdleStreamBytes    float64 `json:"naive_idle_stream_bytes"`
	NaiveIdleStreamRSSBytes float64 `json:"naive_idle_stream_rss_bytes"`
	// RelayOpensPerS is the rate at which circuits or streams are opened,
	// echo one byte and are closed through one relay, 32 in flight:
	// "circuit" (sealed, n0-n1-n2), "circuit_clear_ends" (x0-x1-x2, whose
	// ends run without end-to-end security, which relays never see
	// anyway) and "naive" (through naive1). RelayOpensPerCPUS is opens
	// per CPU second of the relay (per core); RelayOpenRateVsNaive the
	// ratio of the latter, circuit_clear_ends over naive: the relay's own
	// cost per open.
	RelayOpensPerS       map[string]float64 `json:"relay_opens_per_s"`
	RelayOpensPerCPUS    map[string]float64 `json:"relay_opens_per_cpu_s"`
	RelayOpenRateVsNaive float64            `json:"relay_open_rate_vs_naive"`
	// OpenRateErrors counts, by the keys above, the opens that failed in
	// the open rate churns; OpenRateFailures are the churns that failed
	// outright (too many failed opens), whose rates are left out.
	OpenRateErrors   map[string]int `json:"open_rate_errors"`
	OpenRateFailures []string       `json:"open_rate_failures,omitempty"`
	// QUICStreamBytes is the heap+stack per idle quic-go stream at the
	// accepting end (a goroutine blocked reading each stream).
	QUICStreamBytes float64 `json:"quic_stream_bytes"`
	// RerouteMS is, in a diamond with default settings, the time from
	// SIGKILL of the relay on the path to the first successful dial (with
	// a 1-byte echo) through the other relay; median over RerouteRuns.
	RerouteMS   float64   `json:"reroute_ms"`
	RerouteRuns []float64 `json:"reroute_ms_runs"`
	// RerouteMSPinned is the same with link costs pinned so that the other
	// relay is a feasible alternate before the kill.
	RerouteMSPinned float64  `json:"reroute_ms_pinned_costs"`
	RerouteErrors   []string `json:"reroute_errors,omitempty"`
	// Scale is the scale part (scale.go): many idle circuits through one
	// relay and the open rate with them held.
	Scale *scaleResult `json:"scale,omitempty"`
	// ThroughputMBps is the median throughput per path, MB/s (10^6 bytes).
	ThroughputMBps map[string]float64 `json:"throughput_mb_s"`
	// CPUSecondsPerGB: "direct" is the quic-go sender+receiver, "relay" the
	// k=1 relay, "ends_sealed" the two ends of a k0 circuit (end-to-end
	// security on, the default), "ends_clear" those of a k0 circuit
	// between two nodes run with end-to-end security off, "ends_k1",
	// "ends_k1clear" and "ends_naive1" the sender and receiver of k1,
	// k1clear and naive1 (the relay not counted), and "naive_relay" the
	// naive relay of naive1.
	CPUSecondsPerGB map[string]float64 `json:"cpu_s_per_gb"`
	// RouteLosses counts dials from n0 refused for lack of a route after
	// routes had converged (each retried); LastRouteLoss is the last one.
	RouteLosses   int    `json:"route_losses"`
	LastRouteLoss string `json:"last_route_loss,omitempty"`
	TransferBytes int64  `json:"transfer_bytes"`
	Rounds        int    `json:"rounds"`
	Quick         bool   `json:"quick"`
	// Parts lists the parts of the suite this run measured, in the order
	// of allParts. A run with -only measures some of them: the others'
	// figures are zero here and left out of the printed table.
	Parts   []string `json:"parts"`
	Tuning  tuning   `json:"tuning"`
	Machine machine  `json:"machine"`
	Seconds float64  `json:"seconds"`
}

// latency is one run of the latency measurements.
type latency struct {
	// OpenEchoUS is the median time to open a stream or circuit over warm
	// links and get a 1-byte echo back: "direct_quic_stream", "k0".."k2",
	// "naive_k1", "naive_k2" (a quic-go stream through naive relays),
	// "k0clear" (a neighbour circuit with end-to-end security off), and
	// "k0noresume", "k1noresume" (k0 and k1 opened with
	// DialOptions.NoResume).
	OpenEchoUS    map[string]float64 `json:"open_echo_us"`
	OpenEchoP99US map[string]float64 `json:"open_echo_us_p99"`
	// OpenResumed is the share of the sealed opens ("k0".."k2",
	// "k0noresume", "k1noresume") that resumed an end-to-end session (a session
	// ticket: no DH, no identity to verify).
	OpenResumed map[string]float64 `json:"open_echo_session_resumed"`
	// OpenCPUUS is the CPU time per open (µs) of the processes on the
	// path of each OpenEchoUS key: "source", "relays" (all of them
	// together, 0 for none) and "destination", read before and after
	// each batch of opens (so it includes the role's answer to those
	// reads, a few µs per batch).
	OpenCPUUS map[string]map[string]float64 `json:"open_cpu_us"`
	// HopRTT is the round-trip time each relay adds on an idle open
	// circuit: (RTT through two relays - RTT with none) / 2.
	HopRTTP50 float64 `json:"hop_rtt_us_p50"`
	HopRTTP99 float64 `json:"hop_rtt_us_p99"`
	// NaiveHopRTT is the same for the naive relay: (RTT through two naive
	// relays - direct RTT) / 2.
	NaiveHopRTTP50 float64 `json:"naive_hop_rtt_us_p50"`
	NaiveHopRTTP99 float64 `json:"naive_hop_rtt_us_p99"`
	// HopRTTVsNaive is HopRTTP50 / NaiveHopRTTP50; OpenK1VsNaive is
	// open_echo_us k1 over naive_k1 (0 when the naive figure is not
	// positive).
	HopRTTVsNaive float64 `json:"hop_rtt_vs_naive"`
	OpenK1VsNaive float64 `json:"open_k1_vs_naive"`
	// ClearHopRTTP50 is the round-trip time one relay (x1) adds to a
	// circuit whose ends run neither end-to-end security nor resumption,
	// so that the relay carries the bytes a naive relay does: k1clear -
	// k0clear. ClearHopRTTVsNaive is it over the naive relay's (naive_k1
	// - direct): what the relay costs, apart from what the ends send.
	ClearHopRTTP50     float64 `json:"hop_rtt_clear_us_p50"`
	ClearHopRTTVsNaive float64 `json:"hop_rtt_clear_vs_naive"`
	// RTTUS is the 1-byte echo round trip on an open stream or circuit,
	// p50 and p99 per path ("direct", "k0".."k2", "naive_k1", "naive_k2",
	// "k0clear", "k1clear", and "k0noresume", "k1noresume": sealed
	// circuits without the resumable layer).
	RTTUS map[string][2]float64 `json:"rtt_us_p50_p99"`
}

type machine struct {
	Cores      int    `json:"cores"`
	GoVersion  string `json:"go_version"`
	QUICGo     string `json:"quic_go_version"`
	GSO        bool   `json:"gso"`
	Kernel     string `json:"kernel"`
	GOMAXPROCS int    `json:"gomaxprocs"`
}

func machineInfo() machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), GSO: gsoEnabled()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/quic-go/quic-go" {
				m.QUICGo = d.Version
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// gsoEnabled reports whether quic-go will use UDP generic segmentation
// offload: the kernel supports UDP_SEGMENT and QUIC_GO_DISABLE_GSO is not
// set (the test quic-go itself makes).
func gsoEnabled() bool {
	if off, err := strconv.ParseBool(os.Getenv("QUIC_GO_DISABLE_GSO")); err == nil && off {
		return false
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		return false
	}
	return serr == nil
}

// writeJSON writes r to path.
func (r *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// The parts of the suite, each measured by one step (-only runs some).
const (
	partThroughput  = "throughput"
	partResume      = "resume"
	partLatency     = "latency"
	partTTFB        = "ttfb"
	partMemory      = "memory"
	partOpenRate    = "open_rate"
	partReroute     = "reroute"
	partRerouteLive = "reroute_live"
	partScale       = "scale"
)

// allParts are the parts of a whole run, in the order the suite runs them.
var allParts = []string{partThroughput, partResume, partLatency, partTTFB, partMemory, partOpenRate, partReroute, partRerouteLive, partScale}

// ran reports whether this run measured part.
func (r *results) ran(part string) bool { return slices.Contains(r.Parts, part) }

// goal is one line of the table: a figure, its goal and whether it is met,
// and the part that measures it.
type goal struct {
	name, value, target string
	met                 bool
	hasGoal             bool
	part                string
}

// inPart tags gs as measured by part.
func inPart(part string, gs ...goal) []goal {
	for i := range gs {
		gs[i].part = part
	}
	return gs
}

func (r *results) goals() []goal {
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	f0 := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	atLeast := func(name string, v, min float64) goal {
		return goal{name: name, value: f2(v), target: "≥ " + f2(min), met: v >= min, hasGoal: true}
	}
	atMost := func(name string, v, max float64, f func(float64) string) goal {
		return goal{name: name, value: f(v), target: "≤ " + f(max), met: v <= max, hasGoal: true}
	}
	info := func(name, v string) goal { return goal{name: name, value: v} }
	// vsNaive is a ratio to the naive relay, which must be measured
	// (positive) to meet its goal.
	vsNaive := func(name string, v float64, atLeast bool) goal {
		if atLeast {
			return goal{name: name, value: f2(v), target: "≥ 1.00", met: v >= 1, hasGoal: true}
		}
		return goal{name: name, value: f2(v), target: "≤ 1.00", met: v > 0 && v <= 1, hasGoal: true}
	}
	direct := r.OpenEchoUS["direct_quic_stream"]
	busy := r.Busy
	if busy == nil {
		busy = &latency{}
	}
	// Circuits are sealed end to end (the default) while the quic-go
	// baseline is not: the goals allow for the encryption at the ends.
	return slices.Concat(
		inPart(partThroughput,
			atLeast(`r_k["0"] (sealed circuit, no relay / direct quic-go)`, r.RK["0"], 0.90),
			atLeast(`r_k["1"]`, r.RK["1"], 0.48),
			atLeast(`r_k["2"]`, r.RK["2"], 0.33),
			info(`r_k["3"]`, f2(r.RK["3"])),
			atMost("relay_cpu_per_gb_ratio", r.RelayCPUPerGBRatio, 1.1, f2),
			vsNaive("r1_vs_naive (k1 circuit / naive relay)", r.R1VsNaive, true),
			info("relay_cpu_vs_naive", f2(r.RelayCPUVsNaive)),
			info("r1_clear_vs_naive (k1clear circuit / naive relay)", f2(r.R1ClearVsNaive)),
			info("relay_clear_cpu_vs_naive", f2(r.RelayClearCPUVsNaive))),
		inPart(partLatency,
			info("open_echo_us direct_quic_stream", f0(direct)),
			info("open_echo_us k0clear (e2e off)", f0(r.OpenEchoUS["k0clear"])),
			info("open_echo_us k0noresume (not resumable)", f0(r.OpenEchoUS["k0noresume"])),
			info("open_echo_us k0", f0(r.OpenEchoUS["k0"])),
			goal{name: "open_echo_us k1", value: f0(r.OpenEchoUS["k1"]), target: "≤ 3 × direct = " + f0(3*direct),
				met: r.OpenEchoUS["k1"] <= 3*direct, hasGoal: true},
			info("open_echo_us k1noresume (not resumable)", f0(r.OpenEchoUS["k1noresume"])),
			info("open_echo_us k2", f0(r.OpenEchoUS["k2"])),
			info("open_echo_us naive_k1", f0(r.OpenEchoUS["naive_k1"])),
			vsNaive("open_k1_vs_naive", r.OpenK1VsNaive, false),
			info("open_cpu_us direct_quic_stream (source / destination)", r.openCPU("direct_quic_stream")),
			info("open_cpu_us k0clear", r.openCPU("k0clear")),
			info("open_cpu_us k0noresume", r.openCPU("k0noresume")),
			info("open_cpu_us k0", r.openCPU("k0")),
			info("open_cpu_us k1 (source / relay / destination)", r.openCPU("k1")),
			info("open_cpu_us naive_k1", r.openCPU("naive_k1"))),
		inPart(partTTFB,
			info("ttfb_us direct_tcp", f0(r.TTFBUS["direct_tcp"])),
			info("ttfb_us forward_k1", f0(r.TTFBUS["forward_k1"]))),
		inPart(partLatency,
			atMost("hop_rtt_us_p50", r.HopRTTP50, 50, f0),
			info("hop_rtt_us_p99", f0(r.HopRTTP99)),
			info("naive_hop_rtt_us_p50", f0(r.NaiveHopRTTP50)),
			vsNaive("hop_rtt_vs_naive", r.HopRTTVsNaive, false),
			info("hop_rtt_clear_us_p50 (1 relay, clear ends, no resumption)", f0(r.ClearHopRTTP50)),
			info("hop_rtt_clear_vs_naive", f2(r.ClearHopRTTVsNaive)),
			info("busy: open_echo_us direct_quic_stream", f0(busy.OpenEchoUS["direct_quic_stream"])),
			goal{name: "busy: open_echo_us k1", value: f0(busy.OpenEchoUS["k1"]), target: "≤ 3 × direct = " + f0(3*busy.OpenEchoUS["direct_quic_stream"]),
				met: busy.OpenEchoUS["k1"] <= 3*busy.OpenEchoUS["direct_quic_stream"], hasGoal: true},
			vsNaive("busy: open_k1_vs_naive", busy.OpenK1VsNaive, false),
			atMost("busy: hop_rtt_us_p50", busy.HopRTTP50, 50, f0),
			info("busy: naive_hop_rtt_us_p50", f0(busy.NaiveHopRTTP50)),
			vsNaive("busy: hop_rtt_vs_naive", busy.HopRTTVsNaive, false),
			info("busy: hop_rtt_clear_vs_naive", f2(busy.ClearHopRTTVsNaive))),
		inPart(partMemory,
			atMost("idle_circuit_bytes_at_relay", r.IdleCircuitBytes, 16384, f0),
			info("idle_circuit_rss_bytes_at_relay", f0(r.IdleCircuitRSSBytes)),
			info("naive_idle_stream_bytes", f0(r.NaiveIdleStreamBytes)),
			info("quic_stream_bytes", f0(r.QUICStreamBytes))),
		inPart(partOpenRate,
			vsNaive("relay_open_rate_vs_naive (opens per relay CPU s)", r.RelayOpenRateVsNaive, true),
			r.openRateErrorsGoal()),
		inPart(partReroute, atMost("reroute_ms", r.RerouteMS, 1500, f0)),
		inPart(partScale, r.Scale.goals()...))
}

// openCPU shows open_cpu_us of key: source / relays / destination, or
// source / destination when the path has no relay.
func (l *latency) openCPU(key string) string {
	c, ok := l.OpenCPUUS[key]
	if !ok {
		return "-"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	if key == "direct_quic_stream" || key == "k0clear" || key == "k0" || key == "k0noresume" {
		return f(c["source"]) + " / " + f(c["destination"])
	}
	return f(c["source"]) + " / " + f(c["relays"]) + " / " + f(c["destination"])
}

// openRateErrorsGoal: every open of the open rate churns succeeds.
func (r *results) openRateErrorsGoal() goal {
	n := 0
	for _, v := range r.OpenRateErrors {
		n += v
	}
	value := strconv.Itoa(n)
	if len(r.OpenRateFailures) > 0 {
		value += fmt.Sprintf(" (%d churns failed)", len(r.OpenRateFailures))
	}
	return goal{name: "open_rate_errors", value: value, target: "0", met: n == 0 && len(r.OpenRateFailures) == 0, hasGoal: true}
}

// printTable writes the goals table and the raw figures behind it.
func (r *results) printTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue\tgoal\tstatus")
	for _, g := range append(r.goals(), r.resumeGoals()...) {
		if !r.ran(g.part) {
			continue
		}
		status := ""
		if g.hasGoal {
			status = "MISSED"
			if g.met {
				status = "met"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.name, g.value, g.target, status)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if r.ran(partThroughput) {
		fmt.Fprintf(w, "throughput MB/s (median):")
		for _, k := range []string{"direct", "k0", "k1", "k2", "k3", "k0clear", "k1clear", "naive1", "naive2"} {
			fmt.Fprintf(w, " %s %.0f", k, r.ThroughputMBps[k])
		}
		fmt.Fprintf(w, "\nCPU s/GB: direct sender+receiver %.2f, relay %.2f, naive relay %.2f, k0 ends sealed %.2f, k0 ends clear (e2e off) %.2f, k1 ends sealed %.2f, k1 ends clear %.2f, naive1 ends %.2f\n",
			r.CPUSecondsPerGB["direct"], r.CPUSecondsPerGB["relay"], r.CPUSecondsPerGB["naive_relay"],
			r.CPUSecondsPerGB["ends_sealed"], r.CPUSecondsPerGB["ends_clear"], r.CPUSecondsPerGB["ends_k1"], r.CPUSecondsPerGB["ends_k1clear"], r.CPUSecondsPerGB["ends_naive1"])
	}
	for _, l := range []struct {
		name string
		l    *latency
	}{{"idle", &r.latency}, {"busy", r.Busy}} {
		if l.l == nil || !r.ran(partLatency) {
			continue
		}
		fmt.Fprintf(w, "%s: echo RTT µs p50/p99:", l.name)
		for _, k := range []string{"direct", "k0", "k1", "k2", "naive_k1", "naive_k2", "k0clear", "k1clear", "k0noresume", "k1noresume"} {
			fmt.Fprintf(w, " %s %.0f/%.0f", k, l.l.RTTUS[k][0], l.l.RTTUS[k][1])
		}
		fmt.Fprintf(w, "\n%s: open+echo µs p50:", l.name)
		for _, k := range []string{"direct_quic_stream", "k0clear", "k0noresume", "k0", "k1", "k1noresume", "k2", "naive_k1", "naive_k2"} {
			fmt.Fprintf(w, " %s %.0f", k, l.l.OpenEchoUS[k])
		}
		fmt.Fprintln(w)
	}
	if r.ran(partMemory) {
		fmt.Fprintf(w, "idle circuit at the relay: %.0f bytes of which %.0f stack, %.1f goroutines, RSS %.0f bytes; naive relay: %.0f bytes, RSS %.0f\n",
			r.IdleCircuitBytes, r.IdleCircuitStackBytes, r.IdleCircuitGoroutines, r.IdleCircuitRSSBytes, r.NaiveIdleStreamBytes, r.NaiveIdleStreamRSSBytes)
	}
	if r.ran(partOpenRate) {
		fmt.Fprintf(w, "opens through one relay, 32 in flight: sealed circuits %.0f/s (%.0f per relay CPU s), circuits with clear ends %.0f/s (%.0f), naive %.0f/s (%.0f)\n",
			r.RelayOpensPerS["circuit"], r.RelayOpensPerCPUS["circuit"], r.RelayOpensPerS["circuit_clear_ends"], r.RelayOpensPerCPUS["circuit_clear_ends"],
			r.RelayOpensPerS["naive"], r.RelayOpensPerCPUS["naive"])
	}
	for _, e := range r.OpenRateFailures {
		fmt.Fprintf(w, "open rate failure: %s\n", e)
	}
	r.printResume(w)
	if r.ran(partReroute) {
		fmt.Fprintf(w, "reroute ms per run: %v; with pinned costs (feasible alternate): %.0f\n", r.RerouteRuns, r.RerouteMSPinned)
	}
	for _, e := range r.RerouteErrors {
		fmt.Fprintf(w, "reroute failure: %s\n", e)
	}
	if r.RouteLosses > 0 {
		fmt.Fprintf(w, "routing withdrew live routes: %d dials refused and retried; last: %s\n", r.RouteLosses, r.LastRouteLoss)
	}
	r.Scale.print(w)
	if skipped := slices.DeleteFunc(slices.Clone(allParts), r.ran); len(skipped) > 0 {
		fmt.Fprintf(w, "not measured in this run: %s\n", strings.Join(skipped, ", "))
	}
	fmt.Fprintf(w, "transfers %d MiB × %d rounds; %d idle circuits; machine: %d cores, %s, quic-go %s, GSO %v, kernel %s; %.0fs\n",
		r.TransferBytes>>20, r.Rounds, r.IdleCircuits, r.Machine.Cores, r.Machine.GoVersion, r.Machine.QUICGo, r.Machine.GSO, r.Machine.Kernel, r.Seconds)
}

// quantile returns the q-quantile (0..1) of xs by nearest rank.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[min(max(i, 0), len(s)-1)]
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

// micros converts nanosecond samples to microseconds.
func micros(ns []int64) []float64 {
	out := make([]float64, len(ns))
	for i, v := range ns {
		out[i] = float64(v) / 1e3
	}
	return out
}
