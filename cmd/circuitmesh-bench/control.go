package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
)

// The coordinator drives each role process over its stdin and stdout: one
// JSON request per line in, one JSON reply per line out, strictly in turn.
// The first line a role writes, unasked, is its ready reply (its address
// and pid). Closing stdin ends the role. Roles log to stderr only.

// request is one command to a role process.
type request struct {
	Op      string   `json:"op"`
	Addr    string   `json:"addr,omitempty"`
	Peer    string   `json:"peer,omitempty"`
	Peers   []string `json:"peers,omitempty"`
	Bytes   int64    `json:"bytes,omitempty"`
	Count   int      `json:"count,omitempty"`
	Conc    int      `json:"conc,omitempty"`
	Path    string   `json:"path,omitempty"`
	Timeout int64    `json:"timeout_ns,omitempty"`
	// NoResume dials the circuit with resumption off.
	NoResume bool `json:"no_resume,omitempty"`
	// MaxFailed lets a churn go on past up to this many failed streams,
	// counted in the reply's Failed; one more fails the churn.
	MaxFailed int `json:"max_failed,omitempty"`
	// Service is the service a node's churn dials (default echo).
	Service string `json:"service,omitempty"`
}

// reply is a role's answer; Err is set when the command failed.
type reply struct {
	Err     string             `json:"err,omitempty"`
	Addr    string             `json:"addr,omitempty"`
	PID     int                `json:"pid,omitempty"`
	NS      int64              `json:"ns,omitempty"`
	CPUNS   int64              `json:"cpu_ns,omitempty"`
	UnixNS  int64              `json:"unix_ns,omitempty"`
	Samples map[string][]int64 `json:"samples,omitempty"`
	// Resumed counts the circuits of an open-echo that opened by
	// resuming an end-to-end session (a session ticket, no DH).
	Resumed    int      `json:"resumed,omitempty"`
	MemBytes   uint64   `json:"mem_bytes,omitempty"` // heap + stack in use
	StackBytes uint64   `json:"stack_bytes,omitempty"`
	RSSBytes   uint64   `json:"rss_bytes,omitempty"` // resident set size
	Goroutines int      `json:"goroutines,omitempty"`
	Path       []string `json:"path,omitempty"`
	Held       int      `json:"held,omitempty"` // idle streams accepted and kept
	// Failed counts a churn's failed streams (request.MaxFailed);
	// LastFailure is the last one's error.
	Failed      int    `json:"failed,omitempty"`
	LastFailure string `json:"last_failure,omitempty"`
	// RouteLosses counts dials refused for lack of a route after routes
	// had converged; LastRouteLoss is the last such refusal.
	RouteLosses   int             `json:"route_losses,omitempty"`
	LastRouteLoss string          `json:"last_route_loss,omitempty"`
	Routes        []node.PeerInfo `json:"routes,omitempty"`
	// Bytes, Done and Live report a live transfer (resume.go).
	Bytes int64       `json:"bytes,omitempty"`
	Done  bool        `json:"done,omitempty"`
	Live  *liveResult `json:"live,omitempty"`
}

// handler executes one request in a role process.
type handler func(req request) (reply, error)

// serveControl answers requests from in on out until in ends. Profiling
// ("profile-start", "profile-stop"), "cpu" and "mem" are common to every
// role; everything else goes to h.
func serveControl(in io.Reader, out io.Writer, ready reply, h handler) error {
	enc := json.NewEncoder(out)
	ready.PID = os.Getpid()
	if err := enc.Encode(ready); err != nil {
		return fmt.Errorf("write ready line: %w", err)
	}
	prof := &capture{what: "profile", begin: pprof.StartCPUProfile, end: pprof.StopCPUProfile}
	tr := &capture{what: "trace", begin: trace.Start, end: trace.Stop}
	defer func() {
		_ = prof.stop()
		_ = tr.stop()
	}()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var req request
		var rep reply
		var err error
		if err = json.Unmarshal(sc.Bytes(), &req); err != nil {
			err = fmt.Errorf("decode request: %w", err)
		} else {
			switch req.Op {
			case "cpu":
				rep.CPUNS, err = cpuTime()
			case "mem":
				rep.MemBytes, rep.StackBytes, rep.Goroutines = memInUse()
				rep.RSSBytes, err = rss()
			case "profile-start":
				err = prof.start(req.Path)
			case "profile-stop":
				err = prof.stop()
			case "trace-start":
				err = tr.start(req.Path)
			case "trace-stop":
				err = tr.stop()
			default:
				rep, err = h(req)
			}
		}
		if err != nil {
			rep = reply{Err: fmt.Sprintf("%s: %v", req.Op, err)}
		}
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
	}
	return sc.Err()
}

// capture is a CPU profile or an execution trace a role writes to a file
// between a start and a stop request.
type capture struct {
	what  string
	begin func(io.Writer) error
	end   func()
	f     *os.File
}

func (c *capture) start(path string) error {
	if c.f != nil {
		return fmt.Errorf("%s already running", c.what)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.begin(f); err != nil {
		f.Close()
		return err
	}
	c.f = f
	return nil
}

// stop ends the capture, if one runs, and closes its file.
func (c *capture) stop() error {
	if c.f == nil {
		return nil
	}
	c.end()
	err := c.f.Close()
	c.f = nil
	return err
}

// cpuTime is the user plus system CPU time this process used so far.
func cpuTime() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), nil
}

// memInUse collects garbage and returns the heap plus stack bytes in use,
// the stack bytes alone and the number of goroutines.
func memInUse() (total, stack uint64, goroutines int) {
	var ms runtime.MemStats
	for range 2 {
		runtime.GC()
	}
	time.Sleep(50 * time.Millisecond) // let finalizers and goroutine exits settle
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse, ms.StackInuse, runtime.NumGoroutine()
}

// rss is this process's resident set size (/proc/self/statm).
func rss() (uint64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("rss: /proc/self/statm reads %q", b)
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rss: %w", err)
	}
	return pages * uint64(os.Getpagesize()), nil
}
