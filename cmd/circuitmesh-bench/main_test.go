package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as a role process: the suite re-executes
// its own binary with childEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
			os.Stderr.WriteString("circuitmesh-bench role: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// requiredKeys are the figures bench-results.json must carry, as numbers,
// with the sub-keys of the objects.
var requiredKeys = map[string][]string{
	"r_k":                             {"0", "1", "2", "3"},
	"relay_cpu_per_gb_ratio":          nil,
	"open_echo_us":                    {"direct_quic_stream", "k0", "k1", "k2"},
	"ttfb_us":                         {"direct_tcp", "forward_k1"},
	"hop_rtt_us_p50":                  nil,
	"hop_rtt_us_p99":                  nil,
	"idle_circuit_bytes_at_relay":     nil,
	"quic_stream_bytes":               nil,
	"reroute_ms":                      nil,
	"cpu_s_per_gb":                    {"direct", "relay", "ends_sealed", "ends_clear", "naive_relay"},
	"r_naive":                         {"1", "2"},
	"r1_vs_naive":                     nil,
	"relay_cpu_vs_naive":              nil,
	"naive_hop_rtt_us_p50":            nil,
	"hop_rtt_vs_naive":                nil,
	"open_k1_vs_naive":                nil,
	"busy":                            {"hop_rtt_us_p50", "naive_hop_rtt_us_p50", "hop_rtt_vs_naive", "open_k1_vs_naive"},
	"idle_circuit_rss_bytes_at_relay": nil,
	"relay_opens_per_cpu_s":           {"circuit", "circuit_clear_ends", "naive"},
	"relay_open_rate_vs_naive":        nil,
	"machine":                         {"cores", "go_version", "quic_go_version", "gso"},
	"r_k_resume_off":                  {"0", "1", "2", "3"},
	"resume_throughput_ratio":         {"0", "1", "2", "3"},
	"resume_ends_cpu_ratio":           {"0", "1", "2", "3"},
	"resume_cpu_ratio":                nil,
	"resume_sender_cpu_ratio":         {"0", "1", "2", "3"},
	"reroute_live_ms":                 nil,
	"reroute_live_ms_max":             nil,
}

// checkKeys fails unless the JSON file at path has every required key
// with a number (or, in machine, any value) and returns the decoded file.
func checkKeys(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("results are not JSON: %v\n%s", err, b)
	}
	for key, subs := range requiredKeys {
		v, ok := got[key]
		if !ok {
			t.Errorf("results lack %q", key)
			continue
		}
		if subs == nil {
			if _, ok := v.(float64); !ok {
				t.Errorf("%q is %T (%v), want a number", key, v, v)
			}
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%q is %T, want an object", key, v)
			continue
		}
		for _, sub := range subs {
			sv, ok := obj[sub]
			if !ok {
				t.Errorf("%q lacks %q", key, sub)
			} else if _, num := sv.(float64); !num && key != "machine" {
				t.Errorf("%q.%q is %T, want a number", key, sub, sv)
			}
		}
	}
	return got
}

func TestJSONWriterEmitsEveryKey(t *testing.T) {
	r := &results{
		RK: map[string]float64{"0": 1, "1": 0.5, "2": 0.33, "3": 0.25},
		latency: latency{
			OpenEchoUS: map[string]float64{"direct_quic_stream": 90, "k0": 95, "k1": 200, "k2": 300, "naive_k1": 150},
			HopRTTP50:  60, NaiveHopRTTP50: 50, HopRTTVsNaive: 1.2, OpenK1VsNaive: 1.33,
			OpenCPUUS: map[string]map[string]float64{
				"k0": {"source": 210, "destination": 230},
				"k1": {"source": 240, "relays": 380, "destination": 260},
			},
		},
		Busy:              &latency{HopRTTP50: 30, NaiveHopRTTP50: 40, HopRTTVsNaive: 0.75},
		RNaive:            map[string]float64{"1": 0.5, "2": 0.33},
		R1VsNaive:         1.01,
		RelayOpensPerCPUS: map[string]float64{"circuit": 900, "circuit_clear_ends": 950, "naive": 1000}, RelayOpenRateVsNaive: 0.9,
		TTFBUS:  map[string]float64{"direct_tcp": 150, "forward_k1": 1500},
		Machine: machineInfo(),
		Parts:   allParts,
		// One goal missed, the others met.
		IdleCircuitBytes: 82000,
		RerouteMS:        900,
		CPUSecondsPerGB:  map[string]float64{"direct": 4, "relay": 4, "ends_sealed": 5, "ends_clear": 4, "naive_relay": 4},
		resumeResults: resumeResults{
			RKResumeOff:           map[string]float64{"0": 0.95, "1": 0.5, "2": 0.34, "3": 0.26},
			ResumeThroughputRatio: map[string]float64{"0": 0.97, "1": 0.99, "2": 0.98, "3": 0.9},
			ResumeSenderCPURatio:  map[string]float64{"0": 1.1, "1": 1.05, "2": 1.04, "3": 1.02},
			ResumeEndsCPURatio:    map[string]float64{"0": 1.1, "1": 1.05, "2": 1.04, "3": 1.02},
			ResumeCPURatio:        1.1, RerouteLiveMS: 950, RerouteLiveMSMax: 1100, RerouteLiveRuns: []float64{900, 950, 1100},
		},
	}
	path := filepath.Join(t.TempDir(), "bench-results.json")
	if err := r.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, path)
	var table strings.Builder
	r.printTable(&table)
	for _, want := range []string{`r_k["1"]`, "idle_circuit_bytes_at_relay", "reroute_ms", "MISSED", "met",
		"hop_rtt_vs_naive", "busy: hop_rtt_vs_naive", "r1_vs_naive", "open_k1_vs_naive",
		`resume_throughput_ratio["3"]`, "reroute_live_ms (stall of a live circuit, p50)", "[900 950 1100]",
		"210 / 230", "240 / 380 / 260"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// A run of some parts (-only) shows their goals and figures, and not the
// others' zeros as met or missed goals.
func TestTableShowsOnlyPartsMeasured(t *testing.T) {
	r := &results{
		RK:        map[string]float64{"0": 0.95, "1": 0.5, "2": 0.34, "3": 0.25},
		R1VsNaive: 1.02,
		Machine:   machineInfo(),
		Parts:     []string{partThroughput},
	}
	var table strings.Builder
	r.printTable(&table)
	out := table.String()
	for _, want := range []string{`r_k["0"]`, "r1_vs_naive", "throughput MB/s",
		"not measured in this run: resume, latency, ttfb, memory, open_rate, reroute, reroute_live, scale"} {
		if !strings.Contains(out, want) {
			t.Errorf("a throughput run's table lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"reroute_ms", "open_echo_us", "hop_rtt", "idle_circuit_bytes_at_relay",
		"relay_open_rate_vs_naive", "resume_throughput_ratio", "reroute_live_ms", "echo RTT", "idle circuit at the relay",
		"opens through one relay", "resumable vs resumption off", "live circuit stall", "reroute ms per run", "MISSED"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("a throughput run's table shows %q, which it did not measure:\n%s", unwanted, out)
		}
	}
	r.Parts = allParts
	table.Reset()
	r.printTable(&table)
	if out := table.String(); strings.Contains(out, "not measured") || !strings.Contains(out, "reroute_ms") {
		t.Errorf("a whole run's table says a part was not measured, or lacks reroute_ms:\n%s", out)
	}
}

// Each open's CPU is charged to the processes on its path: the source,
// the relays in between (together) and the destination.
func TestOpenCPUByRole(t *testing.T) {
	p := func(name string) *proc { return &proc{name: name} }
	s := &suite{
		line:  []*proc{p("n0"), p("n1"), p("n2"), p("n3"), p("n4")},
		clear: []*proc{p("x0"), p("x1"), p("x2")},
		qs:    p("qs"), qc: p("qc"),
		naive: []*proc{p("naive1"), p("naive2")},
	}
	for key, want := range map[string]string{
		"direct_quic_stream": "qc qs", "k0clear": "x0 x1", "k0": "n0 n1", "k0noresume": "n0 n1",
		"k1": "n0 n1 n2", "k1noresume": "n0 n1 n2", "k2": "n0 n1 n2 n3",
		"naive_k1": "qc naive1 qs", "naive_k2": "qc naive2 naive1 qs",
	} {
		var names []string
		for _, q := range s.openPath(key) {
			names = append(names, q.name)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("%s crosses %q, want %q", key, got, want)
		}
	}
	var sum [3]time.Duration
	addCPU(&sum, []time.Duration{1, 10, 100, 1000}, []time.Duration{3, 20, 300, 5000})
	addCPU(&sum, []time.Duration{0, 0}, []time.Duration{5, 7})
	if want := [3]time.Duration{2 + 5, 10 + 200, 4000 + 7}; sum != want {
		t.Errorf("CPU by role %v, want %v", sum, want)
	}
}

// TestNodeRoleSmoke starts two node roles and a pair of quic roles, links
// them and runs each workload once on a small scale.
func TestNodeRoleSmoke(t *testing.T) {
	a, err := startProc("a", nil, "node", "--name", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer stopOK(t, a)
	b, err := startProc("b", nil, "node", "--name", "b", "--link", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stopOK(t, b)
	if a.addr == "" || a.pid == 0 {
		t.Fatalf("ready line without address or pid: %q %d", a.addr, a.pid)
	}
	call := func(p *proc, req request) reply {
		t.Helper()
		rep, err := p.call(req)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	call(a, request{Op: "wait", Peers: []string{"b"}, Timeout: int64(waitRoutes)})
	if rep := call(a, request{Op: "send", Peer: "b", Bytes: 1 << 20}); rep.NS <= 0 || rep.CPUNS <= 0 {
		t.Errorf("send reported %d ns and %d ns of CPU", rep.NS, rep.CPUNS)
	}
	if rep := call(a, request{Op: "open-echo", Peer: "b", Count: 3}); len(rep.Samples["b"]) != 3 {
		t.Errorf("open-echo samples %v, want 3", rep.Samples)
	}
	if rep := call(a, request{Op: "ping", Peers: []string{"b"}, Count: 5}); len(rep.Samples["b"]) != 5 {
		t.Errorf("ping samples %v, want 5", rep.Samples)
	}
	call(a, request{Op: "hold", Peer: "b", Count: 20, Conc: 4})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if held := call(b, request{Op: "held"}).Held; held == 20 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("b holds %d idle circuits, want 20", held)
		}
	}
	if rep := call(b, request{Op: "mem"}); rep.MemBytes == 0 || rep.Goroutines == 0 {
		t.Errorf("mem reported %+v", rep)
	}
	call(a, request{Op: "release"})
	call(a, request{Op: "churn", Peer: "b", Count: 20, Conc: 4})
	// A churn counts failed opens up to MaxFailed (here every open fails:
	// a nonexistent service), and fails with one more.
	if rep := call(a, request{Op: "churn", Peer: "b", Service: "no-such-service", Count: 4, Conc: 2, MaxFailed: 4}); rep.Failed != 4 || rep.LastFailure == "" {
		t.Errorf("churn with every open failing reported %d failed (last %q), want 4", rep.Failed, rep.LastFailure)
	}
	if _, err := a.call(request{Op: "churn", Peer: "b", Service: "no-such-service", Count: 4, Conc: 2, MaxFailed: 3}); err == nil {
		t.Error("churn with more failed opens than MaxFailed succeeded")
	}
	if rep := call(a, request{Op: "path", Peer: "b"}); strings.Join(rep.Path, ",") != "a,b" {
		t.Errorf("path %v, want [a b]", rep.Path)
	}
	if _, err := a.call(request{Op: "no-such-op"}); err == nil || !strings.Contains(err.Error(), "unknown op") {
		t.Errorf("unknown op answered %v", err)
	}

	qs, err := startProc("qs", nil, "quic")
	if err != nil {
		t.Fatal(err)
	}
	defer stopOK(t, qs)
	qc, err := startProc("qc", nil, "quic")
	if err != nil {
		t.Fatal(err)
	}
	defer stopOK(t, qc)
	call(qc, request{Op: "dial", Addr: qs.addr})
	if rep := call(qc, request{Op: "send", Bytes: 1 << 20}); rep.NS <= 0 {
		t.Errorf("direct send reported %d ns", rep.NS)
	}
	if rep := call(qc, request{Op: "open-echo", Count: 3}); len(rep.Samples["direct"]) != 3 {
		t.Errorf("direct open-echo samples %v, want 3", rep.Samples)
	}

	// A naive relay in front of qs carries bulk data (the receiver
	// counts every byte), echoes and idle streams.
	nv, err := startProc("naive", nil, "naive", "--next", qs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stopOK(t, nv)
	call(qc, request{Op: "dial", Peer: "naive1", Addr: nv.addr})
	if rep := call(qc, request{Op: "send", Peer: "naive1", Bytes: 1 << 20}); rep.NS <= 0 {
		t.Errorf("send through the naive relay reported %d ns", rep.NS)
	}
	if rep := call(qc, request{Op: "open-echo", Peer: "naive1", Count: 3}); len(rep.Samples["naive1"]) != 3 {
		t.Errorf("open-echo through the naive relay: samples %v, want 3", rep.Samples)
	}
	if rep := call(qc, request{Op: "ping", Peers: []string{"", "naive1"}, Count: 5}); len(rep.Samples["naive1"]) != 5 || len(rep.Samples["direct"]) != 5 {
		t.Errorf("ping direct and through the naive relay: samples %v, want 5 each", rep.Samples)
	}
	call(qc, request{Op: "churn", Peer: "naive1", Count: 20, Conc: 4})
}

// TestSpinRoleStartsAndStops starts a busy loop pinned to core 0 and
// stops it by closing its stdin.
func TestSpinRoleStartsAndStops(t *testing.T) {
	p, err := startProc("spin", nil, "spin", "--cpu", "0")
	if err != nil {
		t.Fatal(err)
	}
	stopOK(t, p)
}

func stopOK(t *testing.T, p *proc) {
	t.Helper()
	if err := p.stop(); err != nil {
		t.Error(err)
	}
}

// TestSuiteWritesEveryKey runs the whole suite on a tiny scale.
func TestSuiteWritesEveryKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen processes; skipped with -short")
	}
	o := options{Size: 1 << 20, Rounds: 1, ResumePairs: 1, ResumeSize: 1 << 20, EchoBatches: 1, EchoBatch: 3, PingBatches: 1, PingBatch: 10,
		Idle: 50, Reroutes: 1, ProfileDir: t.TempDir()}
	res, err := runSuite(o)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bench-results.json")
	if err := res.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	got := checkKeys(t, path)
	for k, v := range got["r_k"].(map[string]any) {
		if v.(float64) <= 0 {
			t.Errorf("r_k[%s] = %v, want a positive ratio", k, v)
		}
	}
	if res.RerouteMS <= 0 || res.IdleCircuitBytes <= 0 || res.OpenEchoUS["k1"] <= 0 {
		t.Errorf("figures missing: reroute %v ms, idle %v bytes, open k1 %v µs", res.RerouteMS, res.IdleCircuitBytes, res.OpenEchoUS["k1"])
	}
	if len(res.OpenRateFailures) > 0 {
		t.Errorf("open rate churns failed: %q", res.OpenRateFailures)
	}
	// Every process on an open's path spends CPU on it.
	for key, roles := range map[string][]string{"direct_quic_stream": {"source", "destination"},
		"k0": {"source", "destination"}, "k1": {"source", "relays", "destination"}, "naive_k2": {"source", "relays", "destination"}} {
		for _, role := range roles {
			if v := res.OpenCPUUS[key][role]; v <= 0 {
				t.Errorf("open_cpu_us %s %s = %v, want positive", key, role, v)
			}
		}
	}
	if len(res.RerouteLiveErrors) > 0 || len(res.RerouteLiveRuns) != 3 || res.RerouteLiveMS <= 0 {
		t.Errorf("live reroute: runs %v, errors %q", res.RerouteLiveRuns, res.RerouteLiveErrors)
	}
	if _, err := os.Stat(filepath.Join(o.ProfileDir, "relay-n1.pprof")); err != nil {
		t.Errorf("no relay profile: %v", err)
	}
}

// A role writes a Go execution trace between trace-start and trace-stop,
// refuses a second start while one runs, and ends a trace left running
// when its input ends.
func TestControlTrace(t *testing.T) {
	if trace.IsEnabled() {
		t.Skip("the test binary is already tracing (go test -trace): a second trace cannot start")
	}
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.trace"), filepath.Join(dir, "b.trace")
	var in strings.Builder
	for _, r := range []request{
		{Op: "trace-start", Path: first},
		{Op: "trace-start", Path: second},
		{Op: "trace-stop"},
		{Op: "trace-start", Path: second}, // left running: input ends
	} {
		b, _ := json.Marshal(r)
		in.WriteString(string(b) + "\n")
	}
	var out strings.Builder
	if err := serveControl(strings.NewReader(in.String()), &out, reply{}, func(request) (reply, error) { return reply{}, nil }); err != nil {
		t.Fatal(err)
	}
	if trace.IsEnabled() {
		trace.Stop()
		t.Error("the trace left running still runs after the input ended")
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	var replies []reply
	for dec.More() {
		var r reply
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		replies = append(replies, r)
	}
	if len(replies) != 5 { // the ready line and one per request
		t.Fatalf("%d replies, want 5: %q", len(replies), out.String())
	}
	if replies[1].Err != "" || replies[3].Err != "" || replies[4].Err != "" {
		t.Errorf("unexpected errors: %+v", replies)
	}
	if !strings.Contains(replies[2].Err, "already running") {
		t.Errorf("second start: %q, want already running", replies[2].Err)
	}
	for _, p := range []string{first, second} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "go 1.") {
			t.Errorf("%s does not start like a Go execution trace: %q", p, b[:min(len(b), 16)])
		}
	}
}
