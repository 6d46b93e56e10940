package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// Resumable circuits in the suite: what resumption costs a bulk transfer
// is measured in pairs of transfers (resumePairs), and a diamond
// a-{b,c}-d measures the stall of a live transfer when the relay carrying
// it is killed (reroute_live_ms).

// resumeResults are the figures of resumable circuits in
// bench-results.json (flattened into the top level).
type resumeResults struct {
	// RKResumeOff is r_k for circuits dialled with resumption off: r_k
	// over ResumeThroughputRatio (the pairs run no direct quic-go).
	RKResumeOff map[string]float64 `json:"r_k_resume_off"`
	// ResumeThroughputRatio maps k to the throughput of the resumable
	// circuit (the default) over the same circuit with resumption off,
	// median of the per-pair ratios (see resumePairs).
	ResumeThroughputRatio map[string]float64 `json:"resume_throughput_ratio"`
	// ResumeThroughputIQR maps k to the first and third quartiles of
	// those per-pair ratios: the spread the median comes from.
	ResumeThroughputIQR map[string][2]float64 `json:"resume_throughput_ratio_iqr"`
	// ResumePairs is the number of pairs per k, of ResumePairBytes each.
	ResumePairs     int   `json:"resume_pairs"`
	ResumePairBytes int64 `json:"resume_pair_bytes"`
	// ResumeEndsCPURatio maps k to the CPU per GB of both ends' processes
	// (sender and receiver), resumable over resumption off, median of the
	// per-pair ratios; ResumeCPURatio is its k = 0 figure.
	ResumeEndsCPURatio map[string]float64 `json:"resume_ends_cpu_ratio"`
	ResumeCPURatio     float64            `json:"resume_cpu_ratio"`
	// ResumeSenderCPURatio maps k to the same ratio for the sender's
	// process alone.
	ResumeSenderCPURatio map[string]float64 `json:"resume_sender_cpu_ratio"`
	// RerouteLiveMS is the longest gap in the bytes delivered at d while
	// a transfer a→d crosses a diamond a-{b,c}-d and the relay carrying it
	// gets SIGKILL: median over the runs, with their maximum.
	RerouteLiveMS     float64   `json:"reroute_live_ms"`
	RerouteLiveMSMax  float64   `json:"reroute_live_ms_max"`
	RerouteLiveRuns   []float64 `json:"reroute_live_ms_runs"`
	RerouteLiveBytes  int64     `json:"reroute_live_transfer_bytes"`
	RerouteLiveErrors []string  `json:"reroute_live_errors,omitempty"`
}

// endsTransfer is one timed transfer from n0 to n(k+1) with the CPU of
// both ends' processes.
type endsTransfer struct {
	mbps    float64 // 10^6 bytes per second
	sendCPU float64 // the sender's CPU seconds per 10^9 bytes
	endsCPU float64 // the sender's and the receiver's
}

// endsTransfer sends n bytes from n0 to n(k+1), resumable unless
// noResume.
func (s *suite) endsTransfer(k int, noResume bool, n int64) (endsTransfer, error) {
	recv := s.line[k+1]
	cpu0, err := recv.cpu()
	if err != nil {
		return endsTransfer{}, err
	}
	rep, err := s.line[0].call(request{Op: "send", Bytes: n, Peer: nodeName(k + 1), NoResume: noResume})
	if err != nil {
		return endsTransfer{}, err
	}
	cpu1, err := recv.cpu()
	if err != nil {
		return endsTransfer{}, err
	}
	gb := float64(n) / 1e9
	send := time.Duration(rep.CPUNS).Seconds()
	return endsTransfer{
		mbps:    float64(n) / (float64(rep.NS) / 1e9) / 1e6,
		sendCPU: send / gb,
		endsCPU: (send + (cpu1 - cpu0).Seconds()) / gb,
	}, nil
}

// resumePairs measures what resumption costs a bulk transfer. For each k
// it runs o.ResumePairs pairs of transfers of o.ResumeSize bytes from n0
// to n(k+1): one resumable (the default), one dialled with
// DialOptions.NoResume, back to back, in an order that alternates from
// pair to pair (on-off, then off-on) and between neighbouring k. Each
// pair's ratio compares two transfers made under the same load of the
// machine, and the alternation cancels a load that rises or falls across
// a pair; the figures are the medians of the per-pair ratios.
func (s *suite) resumePairs() error {
	n := s.o.ResumeSize
	s.progress("resumable vs resumption off: warm-up")
	for k := range 4 {
		for _, off := range []bool{false, true} {
			if _, err := s.endsTransfer(k, off, max(n/4, 4<<20)); err != nil {
				return fmt.Errorf("resume warm-up k%d: %w", k, err)
			}
		}
	}
	ratio, sendCPU, endsCPU := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	var cpuOn, cpuOff []float64
	for i := range s.o.ResumePairs {
		var line strings.Builder
		fmt.Fprintf(&line, "resume pair %d/%d, resumable/off throughput (ends CPU):", i+1, s.o.ResumePairs)
		for k := range 4 {
			var got [2]endsTransfer // on, off
			for j := range 2 {
				off := (i+k+j)%2 == 1
				t, err := s.endsTransfer(k, off, n)
				if err != nil {
					return fmt.Errorf("resume pair %d, k%d (resumption off %v): %w", i+1, k, off, err)
				}
				got[map[bool]int{false: 0, true: 1}[off]] = t
			}
			on, off := got[0], got[1]
			key := strconv.Itoa(k)
			ratio[key] = append(ratio[key], on.mbps/off.mbps)
			sendCPU[key] = append(sendCPU[key], on.sendCPU/off.sendCPU)
			endsCPU[key] = append(endsCPU[key], on.endsCPU/off.endsCPU)
			if k == 0 {
				cpuOn, cpuOff = append(cpuOn, on.endsCPU), append(cpuOff, off.endsCPU)
			}
			fmt.Fprintf(&line, " k%d %.2f (%.2f)", k, on.mbps/off.mbps, on.endsCPU/off.endsCPU)
		}
		s.progress("%s", line.String())
	}
	r := s.res
	r.ResumePairs, r.ResumePairBytes = s.o.ResumePairs, n
	r.RKResumeOff, r.ResumeThroughputRatio, r.ResumeThroughputIQR = map[string]float64{}, map[string]float64{}, map[string][2]float64{}
	r.ResumeSenderCPURatio, r.ResumeEndsCPURatio = map[string]float64{}, map[string]float64{}
	for key, v := range ratio {
		r.ResumeThroughputRatio[key] = median(v)
		r.ResumeThroughputIQR[key] = [2]float64{quantile(v, 0.25), quantile(v, 0.75)}
		r.ResumeSenderCPURatio[key] = median(sendCPU[key])
		r.ResumeEndsCPURatio[key] = median(endsCPU[key])
		if rk, ok := r.RK[key]; ok {
			r.RKResumeOff[key] = rk / median(v)
		}
	}
	r.ResumeCPURatio = r.ResumeEndsCPURatio["0"]
	if r.CPUSecondsPerGB == nil {
		r.CPUSecondsPerGB = map[string]float64{}
	}
	r.CPUSecondsPerGB["ends_sealed_resume_on"] = median(cpuOn)
	r.CPUSecondsPerGB["ends_sealed_resume_off"] = median(cpuOff)
	return nil
}

// resumeGoals are the table's lines for resumable circuits.
func (r *results) resumeGoals() []goal {
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	var gs []goal
	for k := range 4 {
		key := strconv.Itoa(k)
		v := r.ResumeThroughputRatio[key]
		gs = append(gs, goal{name: `resume_throughput_ratio["` + key + `"] (resumable / resume off)`, value: f2(v), target: "≥ 0.95", met: v >= 0.95, hasGoal: true})
	}
	gs = append(gs, goal{name: "resume_cpu_ratio (k0 ends, resumable / resume off)", value: f2(r.ResumeCPURatio)})
	ok := len(r.RerouteLiveErrors) == 0 && len(r.RerouteLiveRuns) > 0
	return append(inPart(partResume, gs...), inPart(partRerouteLive,
		goal{name: "reroute_live_ms (stall of a live circuit, p50)", value: strconv.FormatFloat(r.RerouteLiveMS, 'f', 0, 64), target: "≤ 1500, intact",
			met: ok && r.RerouteLiveMS <= 1500, hasGoal: true},
		goal{name: "reroute_live_ms_max", value: strconv.FormatFloat(r.RerouteLiveMSMax, 'f', 0, 64)})...)
}

// printResume writes the raw figures behind the resumption lines.
func (r *results) printResume(w io.Writer) {
	if r.ran(partResume) {
		r.printResumePairs(w)
	}
	if !r.ran(partRerouteLive) {
		return
	}
	fmt.Fprintf(w, "live circuit stall when its relay is killed, ms per run (%d MiB a→d): %.0f\n", r.RerouteLiveBytes>>20, r.RerouteLiveRuns)
	for _, e := range r.RerouteLiveErrors {
		fmt.Fprintf(w, "live reroute failure: %s\n", e)
	}
}

// printResumePairs writes the raw figures of the resumable/off pairs.
func (r *results) printResumePairs(w io.Writer) {
	fmt.Fprintf(w, "resumable vs resumption off, %d pairs of %d MiB per k: throughput ratio p25-p75", r.ResumePairs, r.ResumePairBytes>>20)
	for _, k := range []string{"0", "1", "2", "3"} {
		q := r.ResumeThroughputIQR[k]
		fmt.Fprintf(w, " k%s %.2f-%.2f", k, q[0], q[1])
	}
	fmt.Fprintf(w, "; ends CPU ratio")
	for _, k := range []string{"0", "1", "2", "3"} {
		fmt.Fprintf(w, " k%s %.2f", k, r.ResumeEndsCPURatio[k])
	}
	fmt.Fprintf(w, "; sender CPU ratio")
	for _, k := range []string{"0", "1", "2", "3"} {
		fmt.Fprintf(w, " k%s %.2f", k, r.ResumeSenderCPURatio[k])
	}
	fmt.Fprintf(w, "; k0 ends CPU s/GB resumable %.2f, off %.2f; r_k off", r.CPUSecondsPerGB["ends_sealed_resume_on"], r.CPUSecondsPerGB["ends_sealed_resume_off"])
	for _, k := range []string{"0", "1", "2", "3"} {
		fmt.Fprintf(w, " %s %.2f", k, r.RKResumeOff[k])
	}
	fmt.Fprintln(w)
}

// liveService is the sink of the live reroute: it reads everything and
// answers with the byte count, the SHA-256 of the bytes and the longest
// gap between two reads.
const liveService = "livesink"

// liveReplyLen is the sink's answer: count, SHA-256, longest gap (ns).
const liveReplyLen = 8 + sha256.Size + 8

// serveLiveSink reads s to its end and answers.
func serveLiveSink(s stream) error {
	defer s.Close()
	h := sha256.New()
	buf := make([]byte, writeChunk)
	var total int64
	var last time.Time
	var gap time.Duration
	for {
		n, err := s.Read(buf)
		if n > 0 {
			now := time.Now()
			if !last.IsZero() {
				gap = max(gap, now.Sub(last))
			}
			last = now
			h.Write(buf[:n])
			total += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("live sink read after %d bytes: %w", total, err)
		}
	}
	var rep [liveReplyLen]byte
	binary.BigEndian.PutUint64(rep[:8], uint64(total))
	copy(rep[8:], h.Sum(nil))
	binary.BigEndian.PutUint64(rep[8+sha256.Size:], uint64(gap))
	if _, err := s.Write(rep[:]); err != nil {
		return fmt.Errorf("live sink answer: %w", err)
	}
	return s.CloseWrite()
}

// liveSender is the transfer of the live reroute at a.
type liveSender struct {
	c    node.Conn
	n    int64
	mu   sync.Mutex
	sent int64
	done chan struct{}
	err  error
	sum  []byte   // SHA-256 of what was sent
	path []string // the path when the last byte was written
	ans  [liveReplyLen]byte
}

// live is the role process's live transfer, at most one.
var live struct {
	mu sync.Mutex
	s  *liveSender
}

// run sends n pseudo-random bytes, half-closes and reads the answer.
func (ls *liveSender) run() {
	defer close(ls.done)
	defer ls.c.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{'l', 'i', 'v', 'e'})
	buf := make([]byte, writeChunk)
	err := func() error {
		for left := ls.n; left > 0; {
			b := buf[:min(left, writeChunk)]
			_, _ = rng.Read(b)
			h.Write(b)
			if _, err := ls.c.Write(b); err != nil {
				return fmt.Errorf("write after %d of %d bytes: %w", ls.n-left, ls.n, err)
			}
			left -= int64(len(b))
			ls.mu.Lock()
			ls.sent = ls.n - left
			ls.mu.Unlock()
		}
		path := ls.c.Path() // the path that carried the last bytes
		ls.mu.Lock()
		ls.path = path
		ls.mu.Unlock()
		if err := ls.c.CloseWrite(); err != nil {
			return fmt.Errorf("half-close: %w", err)
		}
		if _, err := io.ReadFull(ls.c, ls.ans[:]); err != nil {
			return fmt.Errorf("read the sink's answer: %w", err)
		}
		return nil
	}()
	ls.mu.Lock()
	ls.err, ls.sum = err, h.Sum(nil)
	ls.mu.Unlock()
}

// sentBytes is how much the application wrote so far.
func (ls *liveSender) sentBytes() int64 {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.sent
}

// handleResume runs the node role's live-reroute operations; ok is false
// for an operation it does not know.
func (r *nodeRunner) handleResume(req request) (rep reply, ok bool, err error) {
	switch req.Op {
	case "live-listen":
		return reply{}, true, r.serve(liveService, func(c net.Conn) { _ = serveLiveSink(c.(node.Conn)) })
	case "live-start":
		live.mu.Lock()
		defer live.mu.Unlock()
		if live.s != nil {
			return reply{}, true, errors.New("a live transfer already ran")
		}
		c, err := r.n.DialWith(context.Background(), req.Peer, liveService, node.DialOptions{RecordPath: true})
		if err != nil {
			return reply{}, true, err
		}
		live.s = &liveSender{c: c, n: req.Bytes, done: make(chan struct{})}
		go live.s.run()
		return reply{Path: c.Path()}, true, nil
	case "live-status", "live-wait":
		live.mu.Lock()
		ls := live.s
		live.mu.Unlock()
		if ls == nil {
			return reply{}, true, errors.New("no live transfer")
		}
		if req.Op == "live-wait" {
			select {
			case <-ls.done:
			case <-time.After(time.Duration(req.Timeout)):
				return reply{}, true, fmt.Errorf("live transfer not done after %v (%d bytes written)", time.Duration(req.Timeout), ls.sentBytes())
			}
		}
		rep := reply{Bytes: ls.sentBytes(), Path: ls.c.Path()}
		select {
		case <-ls.done:
		default:
			return rep, true, nil
		}
		if ls.err != nil {
			return reply{}, true, ls.err
		}
		rep.Done, rep.Path = true, ls.path
		rep.Live = &liveResult{
			Count:   int64(binary.BigEndian.Uint64(ls.ans[:8])),
			SumSent: hex.EncodeToString(ls.sum),
			SumRecv: hex.EncodeToString(ls.ans[8 : 8+sha256.Size]),
			GapNS:   int64(binary.BigEndian.Uint64(ls.ans[8+sha256.Size:])),
		}
		return rep, true, nil
	}
	return reply{}, false, nil
}

// liveResult is the outcome of a live transfer: what the sink received,
// the hashes at both ends and the sink's longest gap between reads.
type liveResult struct {
	Count   int64  `json:"count"`
	SumSent string `json:"sha256_sent"`
	SumRecv string `json:"sha256_received"`
	GapNS   int64  `json:"gap_ns"`
}

// liveTimeout bounds a live transfer after the kill: past the default
// resume timeout (30 s), the circuit has failed.
const liveTimeout = 60 * time.Second

// rerouteLive runs the live reroute max(3, Reroutes+2) times.
func (s *suite) rerouteLive() error {
	runs := max(3, s.o.Reroutes+2)
	size := max(s.o.Size, 32<<20)
	s.res.RerouteLiveBytes = size
	var ms []float64
	for run := range runs {
		v, err := s.rerouteLiveOnce(size)
		var lf *liveFailure
		if errors.As(err, &lf) {
			s.res.RerouteLiveErrors = append(s.res.RerouteLiveErrors, err.Error())
			s.progress("live reroute %d/%d: %v", run+1, runs, err)
			continue
		} else if err != nil {
			return fmt.Errorf("live reroute run %d: %w", run+1, err)
		}
		s.progress("live reroute %d/%d: longest gap at d %.0f ms", run+1, runs, v)
		ms = append(ms, v)
	}
	s.res.RerouteLiveRuns = ms
	if len(ms) > 0 {
		s.res.RerouteLiveMS, s.res.RerouteLiveMSMax = median(ms), slices.Max(ms)
	}
	return nil
}

// liveFailure is a live transfer that did not arrive intact: a result,
// not a failure of the suite.
type liveFailure struct{ err error }

func (e *liveFailure) Error() string { return e.err.Error() }
func (e *liveFailure) Unwrap() error { return e.err }

// rerouteLiveOnce builds a diamond a-{b,c}-d of default nodes, starts a
// resumable transfer of size bytes from a to d, kills (SIGKILL) the relay
// it crosses once a quarter was written and returns the longest gap
// between two reads at d, in ms.
func (s *suite) rerouteLiveOnce(size int64) (ms float64, err error) {
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			if p != nil {
				err = errors.Join(err, p.stop())
			}
		}
	}()
	for _, step := range [][]string{{"a"}, {"b", "a"}, {"c", "a"}, {"d", "b", "c"}} {
		args := []string{"node", "--default", "--name", step[0]}
		var addrs []string
		for _, l := range step[1:] {
			addrs = append(addrs, procs[l].addr)
		}
		if len(addrs) > 0 {
			args = append(args, "--link", strings.Join(addrs, ","))
		}
		p, err := startProc("live-"+step[0], s.o.Log, args...)
		if err != nil {
			return 0, err
		}
		procs[step[0]] = p
	}
	a, d := procs["a"], procs["d"]
	if _, err := a.call(request{Op: "wait", Peers: []string{"b", "c", "d"}, Timeout: int64(waitRoutes)}); err != nil {
		return 0, err
	}
	if _, err := d.call(request{Op: "wait", Peers: []string{"a"}, Timeout: int64(waitRoutes)}); err != nil {
		return 0, err
	}
	if _, err := d.call(request{Op: "live-listen"}); err != nil {
		return 0, err
	}
	rep, err := a.call(request{Op: "live-start", Peer: "d", Bytes: size})
	if err != nil {
		return 0, err
	}
	if len(rep.Path) != 3 {
		return 0, fmt.Errorf("path from a to d is %v, want one relay", rep.Path)
	}
	victim := rep.Path[1]
	for {
		st, err := a.call(request{Op: "live-status"})
		if err != nil {
			return 0, &liveFailure{fmt.Errorf("before the kill: %w", err)}
		}
		if st.Done {
			return 0, fmt.Errorf("the %d MiB transfer ended before a quarter of it was seen written; use a larger -size", size>>20)
		}
		if st.Bytes >= size/4 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	procs[victim].kill()
	procs[victim] = nil
	rep, err = a.call(request{Op: "live-wait", Timeout: int64(liveTimeout)})
	if err != nil {
		return 0, &liveFailure{fmt.Errorf("after killing %s: %w", victim, err)}
	}
	l := rep.Live
	switch {
	case l == nil:
		return 0, &liveFailure{errors.New("no result")}
	case l.Count != size:
		return 0, &liveFailure{fmt.Errorf("d received %d bytes, a sent %d", l.Count, size)}
	case l.SumSent != l.SumRecv:
		return 0, &liveFailure{fmt.Errorf("SHA-256 at d %s, sent %s", l.SumRecv, l.SumSent)}
	case slices.Contains(rep.Path, victim):
		return 0, &liveFailure{fmt.Errorf("the circuit still runs through the killed %s: %v", victim, rep.Path)}
	}
	return float64(l.GapNS) / 1e6, nil
}
