package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// Services every bench node publishes besides the built-in echo.
const (
	sinkService = "sink" // reads everything, answers with the byte count
	holdService = "hold" // accepts and keeps circuits idle
)

// tuning is the configuration the suite applies to circuits and baselines
// alike. Zero fields mean the package defaults.
type tuning struct {
	RelayBuffer     int    `json:"relay_buffer"`
	MaxStreamWindow uint64 `json:"max_stream_window"`
	MaxStreams      int    `json:"max_streams"`
}

func (t *tuning) flags(fs *flag.FlagSet) {
	fs.IntVar(&t.RelayBuffer, "relay-buffer", 0, "node Limits.RelayBuffer (0: default)")
	fs.Uint64Var(&t.MaxStreamWindow, "stream-window", 0, "QUIC max stream receive window (0: default)")
	fs.IntVar(&t.MaxStreams, "max-streams", 0, "QUIC incoming stream limit per link and circuits per link (0: default)")
}

func (t tuning) args() []string {
	return []string{
		fmt.Sprintf("--relay-buffer=%d", t.RelayBuffer),
		fmt.Sprintf("--stream-window=%d", t.MaxStreamWindow),
		fmt.Sprintf("--max-streams=%d", t.MaxStreams),
	}
}

// streamsPerLink is the circuits (and QUIC streams) a link admits: at
// least 16384, so that 10,000 idle circuits fit through one relay.
func (t tuning) streamsPerLink() int { return max(t.MaxStreams, 16384) }

// quicConfig is the links configuration the tuning selects (Identity and
// Handler left for the caller).
func (t tuning) quicConfig() links.QUICConfig {
	return links.QUICConfig{
		MaxStreams:      t.streamsPerLink(),
		MaxStreamWindow: t.MaxStreamWindow,
	}
}

// nodeRole runs one mesh node controlled over stdin/stdout:
//
//	circuitmesh-bench node --name r1 --listen 127.0.0.1:0 --link 127.0.0.1:4242
func nodeRole(args []string) error {
	fs, rf := newRoleFlags("node")
	name := fs.String("name", "", "node name (required)")
	linkTo := fs.String("link", "", "comma-separated addresses to keep links to")
	defaults := fs.Bool("default", false, "run with the default node configuration (ignores the tuning flags)")
	costs := fs.String("cost", "", "comma-separated peer=cost pins of link costs")
	e2e := fs.String("e2e", "on", "end-to-end circuit security: on or off")
	stopProfile, err := rf.parse(fs, args)
	if err != nil {
		return err
	}
	defer stopProfile()
	if *name == "" {
		return errors.New("node: --name is required")
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	id, err := identity.Insecure(*name, node.DefaultMesh)
	if err != nil {
		return fmt.Errorf("node %s: identity: %w", *name, err)
	}
	cfg := node.Config{Name: *name, Identity: id, ListenAddr: rf.listen, Logger: logger}
	switch *e2e {
	case "on":
	case "off":
		cfg.E2E = node.E2EOff
	default:
		return fmt.Errorf("-e2e: want on or off, got %q", *e2e)
	}
	if *linkTo != "" {
		cfg.StaticLinks = strings.Split(*linkTo, ",")
	}
	if cfg.LinkCosts, err = parseCosts(*costs); err != nil {
		return err
	}
	if !*defaults {
		applyTuning(&cfg, rf.tune)
	}
	n, err := node.New(cfg)
	if err != nil {
		return fmt.Errorf("node %s: %w", *name, err)
	}
	if err := n.Start(context.Background()); err != nil {
		return fmt.Errorf("node %s: %w", *name, err)
	}
	defer n.Close()
	r := &nodeRunner{n: n}
	if r.web, err = startWeb(n); err != nil {
		return err
	}
	defer r.web.stop()
	defer r.fwds.close()
	if err := r.serve(sinkService, func(c net.Conn) { _ = serveSink(c.(node.Conn)) }); err != nil {
		return err
	}
	if err := r.serve(holdService, func(c net.Conn) { r.accepted.keep(c.(node.Conn)) }); err != nil {
		return err
	}
	defer r.accepted.release()
	defer r.held.release()
	return serveControl(os.Stdin, os.Stdout, reply{Addr: n.Addr().String()}, r.handle)
}

// parseCosts parses "peer=cost,peer=cost".
func parseCosts(s string) (map[string]links.Cost, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]links.Cost{}
	for _, kv := range strings.Split(s, ",") {
		peer, v, ok := strings.Cut(kv, "=")
		c, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("node: --cost %q: want peer=cost", kv)
		}
		out[peer] = links.Cost(c)
	}
	return out, nil
}

// applyTuning sets the limits the suite needs (10,000 idle circuits through
// one relay from one source) and the tuned QUIC configuration.
func applyTuning(cfg *node.Config, t tuning) {
	perLink := t.streamsPerLink()
	cfg.Limits = node.Limits{
		MaxCircuits:          4 * perLink,
		MaxCircuitsPerLink:   perLink,
		MaxCircuitsPerSource: perLink,
		RelayBuffer:          t.RelayBuffer,
	}
	cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
		qc := t.quicConfig()
		qc.Identity, qc.Handler, qc.Role = cfg.Identity, h, role
		qc.ListenAddr, qc.Logger = cfg.ListenAddr, cfg.Logger
		return links.NewQUICTransport(qc)
	}
}

type nodeRunner struct {
	web         *webServer // tiny HTTP server exposed as webService
	fwds        forwards   // forwards to other nodes' webService (TTFB)
	n           *node.Node
	routeLosses atomic.Int64 // dials refused for lack of a route
	lastLoss    atomic.Value // the last such refusal (string)
	held        holder       // circuits this node opened with "hold"
	accepted    holder       // circuits accepted by the hold service
}

// serve publishes service and runs fn on every accepted circuit.
func (r *nodeRunner) serve(service string, fn func(net.Conn)) error {
	lis, err := r.n.Listen(service)
	if err != nil {
		return fmt.Errorf("node %s: %w", r.n.Name(), err)
	}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go fn(c)
		}
	}()
	return nil
}

// routeWait bounds how long a dial waits for a lost route to come back.
const routeWait = 5 * time.Second

// dial opens a circuit. Routes converge before the suite measures, so a
// refusal for lack of a route means routing withdrew a route that exists:
// dial counts it and tries again while routeWait allows.
func (r *nodeRunner) dial(ctx context.Context, peer, service string, early bool) (stream, error) {
	return r.dialWith(ctx, peer, service, node.DialOptions{Early: early})
}

// dialWith is dial with options.
func (r *nodeRunner) dialWith(ctx context.Context, peer, service string, opt node.DialOptions) (stream, error) {
	deadline := time.Now().Add(routeWait)
	for {
		c, err := r.n.DialWith(ctx, peer, service, opt)
		if err == nil {
			return c, nil
		}
		if !r.routeLost(err) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// routeLost counts err if it is a refusal for lack of a route.
func (r *nodeRunner) routeLost(err error) bool {
	if !errors.Is(err, circuit.ErrNoRoute) {
		return false
	}
	r.routeLosses.Add(1)
	r.lastLoss.Store(err.Error())
	return true
}

func (r *nodeRunner) handle(req request) (reply, error) {
	ctx := context.Background()
	switch req.Op {
	case "wait":
		return reply{}, r.waitReachable(req.Peers, time.Duration(req.Timeout))
	case "send":
		c, err := r.dialWith(ctx, req.Peer, sinkService, node.DialOptions{NoResume: req.NoResume})
		if err != nil {
			return reply{}, err
		}
		defer c.Close()
		return timedSend(c, req.Bytes)
	case "open-echo":
		resumed := 0
		s, err := openEchoSeen(req.Count, func() (stream, error) { return r.dial(ctx, req.Peer, node.EchoService, true) }, r.routeLost, func(c stream) {
			if sessionResumed(c) {
				resumed++
			}
		})
		return reply{Samples: map[string][]int64{req.Peer: s}, Resumed: resumed}, err
	case "open-echo-noresume":
		// The same with DialOptions.NoResume: a sealed circuit without the
		// resumable layer, to show what that layer adds to an open.
		resumed := 0
		s, err := openEchoSeen(req.Count, func() (stream, error) {
			return r.n.DialWith(ctx, req.Peer, node.EchoService, node.DialOptions{Early: true, NoResume: true})
		}, r.routeLost, func(c stream) {
			if sessionResumed(c) {
				resumed++
			}
		})
		return reply{Samples: map[string][]int64{req.Peer: s}, Resumed: resumed}, err
	case "ping":
		streams := map[string]stream{}
		defer func() {
			for _, s := range streams {
				s.Close()
			}
		}()
		for _, p := range req.Peers {
			c, err := r.dialWith(ctx, p, node.EchoService, node.DialOptions{NoResume: req.NoResume})
			if err != nil {
				return reply{}, err
			}
			streams[p] = c
		}
		s, err := pingRounds(streams, req.Count)
		return reply{Samples: s}, err
	case "hold":
		err := r.held.open(ctx, req.Count, req.Conc, func(ctx context.Context) (stream, error) {
			return r.dial(ctx, req.Peer, holdService, false)
		})
		return reply{}, err
	case "churn":
		service := cmp.Or(req.Service, node.EchoService)
		return churn(ctx, req.Count, req.Conc, req.MaxFailed, func(ctx context.Context) (stream, error) {
			return r.dial(ctx, req.Peer, service, true)
		})
	case "release":
		r.held.release()
		return reply{}, nil
	case "path":
		c, err := r.n.DialWith(ctx, req.Peer, node.EchoService, node.DialOptions{RecordPath: true})
		if err != nil {
			return reply{}, err
		}
		defer c.Close()
		return reply{Path: c.Path()}, echoOnce(c)
	case "web-addr":
		return reply{Addr: r.web.addr}, nil
	case "ttfb":
		fwd, err := r.fwds.to(r.n, req.Peer)
		if err != nil {
			return reply{}, err
		}
		s, err := ttfbRounds(req.Addr, fwd, req.Count)
		return reply{Samples: s}, err
	case "route-losses":
		last, _ := r.lastLoss.Load().(string)
		return reply{RouteLosses: int(r.routeLosses.Load()), LastRouteLoss: last}, nil
	case "held":
		return reply{Held: r.accepted.len()}, nil
	case "routes":
		return reply{Routes: r.n.Peers()}, nil
	case "redial":
		return r.redial(req.Peer, time.Duration(req.Timeout))
	}
	if rep, ok, err := r.handleResume(req); ok {
		return rep, err
	}
	return reply{}, fmt.Errorf("unknown op %q", req.Op)
}

// timedSend sends n bytes on s and reports the time and this process's
// CPU time it took.
func timedSend(s stream, n int64) (reply, error) {
	cpu0, err := cpuTime()
	if err != nil {
		return reply{}, err
	}
	t := time.Now()
	if err := sendBulk(s, n); err != nil {
		return reply{}, err
	}
	d := time.Since(t)
	cpu1, err := cpuTime()
	return reply{NS: d.Nanoseconds(), CPUNS: cpu1 - cpu0}, err
}

// waitReachable waits until every peer is reachable.
func (r *nodeRunner) waitReachable(peers []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		known := map[string]bool{}
		for _, p := range r.n.Peers() {
			known[p.Name] = p.Reachable
		}
		var missing []string
		for _, p := range peers {
			if !known[p] {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still has no route to %v after %v", r.n.Name(), missing, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// redial dials peer's echo service until a circuit opens and echoes a
// byte, and reports the wall-clock time of that success and its path.
// Each attempt is bounded so that a dial stuck on a dead next hop gives
// way to the next attempt.
func (r *nodeRunner) redial(peer string, timeout time.Duration) (reply, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := r.n.DialWith(ctx, peer, node.EchoService, node.DialOptions{RecordPath: true})
		if err == nil {
			err = echoOnce(c)
			c.Close()
			if err == nil {
				cancel()
				return reply{UnixNS: time.Now().UnixNano(), Path: c.Path()}, nil
			}
		}
		cancel()
		last = err
		time.Sleep(5 * time.Millisecond)
	}
	return reply{}, fmt.Errorf("no circuit to %s within %v: %w", peer, timeout, last)
}

// roleFlags are the flags every role takes.
type roleFlags struct {
	listen, cpuprofile string
	tune               tuning
}

func newRoleFlags(role string) (*flag.FlagSet, *roleFlags) {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	rf := &roleFlags{}
	fs.StringVar(&rf.listen, "listen", "127.0.0.1:0", "UDP address")
	fs.StringVar(&rf.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	rf.tune.flags(fs)
	return fs, rf
}

// parse parses args and starts the CPU profile when asked; the caller must
// call stop before exiting.
func (rf *roleFlags) parse(fs *flag.FlagSet, args []string) (stop func(), err error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if rf.cpuprofile == "" {
		return func() {}, nil
	}
	f, err := os.Create(rf.cpuprofile)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// sessionResumed reports whether c is a sealed circuit that opened by
// resuming an end-to-end session.
func sessionResumed(c stream) bool {
	s, ok := c.(interface{ SessionResumed() bool })
	return ok && s.SessionResumed()
}
