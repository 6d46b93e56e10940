package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/earlyhup"
	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/httpserve"
	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/sdnotify"
	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/ui"
	"github.com/circuitmesh/circuitmesh/node"
)

func runCommand() *cli.Command {
	// hup is buffered: SIGHUPs that come while the daemon starts make
	// one reload once it is up. earlyhup asks for them as the process
	// starts.
	hup := earlyhup.C
	return &cli.Command{
		Name:  "run",
		Usage: "run a node in the foreground until SIGINT or SIGTERM (SIGHUP reloads the identity files and the policy)",
		Description: `Runs the daemon: QUIC links on --listen, static links to every --link,
the admin socket the other commands use, and the --expose/--forward tunnels.
Every flag can also come from a --config file ("flag = value" lines) or from
CIRCUITMESH_<FLAG> environment variables (CIRCUITMESH_DATA_DIR, ...); the
command line wins over the environment, which wins over the file.
Tracing is exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_TRACES_EXPORTER is set (standard OTEL_* variables).
On SIGTERM or SIGINT the daemon drains: open circuits and tunnels get
--drain-timeout to finish, then it exits with status 0 (also when the
signal comes while it starts). A second SIGTERM or SIGINT during the drain
ends it at once: what is still open is cut, the node still says goodbye
to its neighbours, and the exit status is 1.

Example:
   circuitmesh run --data-dir /var/lib/circuitmesh --listen 0.0.0.0:4242 \
       --link 10.0.0.2:4242 --expose web=127.0.0.1:8080`,
		Flags: runFlags(),
		Before: func(c *cli.Context) error {
			// SIGHUP first (again, for a run in a process that
			// released it): until a program asks for it, SIGHUP ends
			// it, and systemd's ExecReload sends it as soon as the
			// start returns. One sent while the daemon starts waits in
			// the channel and is handled once the node is up.
			signal.Notify(hup, syscall.SIGHUP)
			if err := applyConfig(c, true); err != nil {
				signal.Stop(hup)
				return err
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			defer signal.Stop(hup)
			if c.NArg() > 0 {
				return usagef("run takes no arguments, got %q (flags start with --)", c.Args().First())
			}
			cfg, err := buildDaemonConfig(c)
			if err != nil {
				return err
			}
			cfg.hup = hup
			if args, ok := c.Context.Value(argsKey{}).([]string); ok && c.Path("config") != "" {
				cfg.checkConfig = func() error { return checkRunConfig(args) }
			}
			// Room for two: the stop, and a second signal that cuts
			// the drain short.
			stop := make(chan os.Signal, 2)
			signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(stop)
			cfg.stop = stop
			return runDaemon(c.Context, cfg, c.App.ErrWriter)
		},
	}
}

// runDaemon runs the node until ctx ends or a signal comes on d.stop,
// then shuts down in order: the node drains (no new circuits or tunnel
// connections, neighbours route around it, open circuits, tunnels
// included, get --drain-timeout; the admin API answers meanwhile and
// status says "draining"), then the admin API and tunnels, metrics,
// tracing. A stop while the node starts ends the start and is no failure.
// A second signal on d.stop while the node drains ends the drain at once:
// open circuits are reset, the admin API and the tunnels close, the node
// says goodbye on its links and leaves the gossip (within goodbyeTimeout)
// and runDaemon returns errDrainCut.
func runDaemon(ctx context.Context, d daemonConfig, logw io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case s := <-d.stop:
			cancel(fmt.Errorf("%v signal received", s))
		case <-ctx.Done():
		}
	}()
	hup := d.hup
	if hup == nil {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		defer signal.Stop(c)
		hup = c
	}
	log := newLogger(logw, d.level, d.json)
	d.node.Logger = log
	tp, shutdownTracing, err := tracerProvider(ctx, d.node.Name, log)
	if err != nil {
		return err
	}
	// After a second stop signal the flush gets cutFlushTimeout at most,
	// within what remains of the goodbye timeout.
	flushWithin := traceFlushTimeout
	defer func() { shutdownTracing(flushWithin) }()
	if tp != nil {
		d.node.TracerProvider = tp
	}

	if err := os.MkdirAll(filepath.Dir(d.admin), 0o700); err != nil {
		return fmt.Errorf("admin socket directory: %w", err)
	}
	adminLn, err := admin.Listen(d.admin, log)
	if err != nil {
		return err
	}
	defer adminLn.Close()

	n, err := node.New(d.node)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		if ctx.Err() != nil {
			// Stopped (SIGTERM, SIGINT) while starting: what was asked.
			log.Info("stopped while starting", "cause", context.Cause(ctx))
			return nil
		}
		return explainStartError(err, d.node.ListenAddr, d.node.Discovery.BindAddr)
	}
	drainCut := false
	defer func() {
		if !drainCut { // else the node is still draining: Close would wait for it
			n.Close()
		}
	}()

	dn := daemonNode{Node: n, policy: d.policy, checkConfig: d.checkConfig, reload: new(sync.Mutex)}
	srv := admin.NewServer(dn, log)
	defer srv.Close()
	for _, e := range d.exposes {
		if err := srv.AddExpose(e.service, e.target); err != nil {
			return err
		}
	}
	for _, f := range d.forwards {
		if _, err := srv.AddForward(f.listen, f.peer, f.service); err != nil {
			return explainListenError(err, "--forward", f.listen)
		}
	}
	stopMetrics, err := serveMetrics(d.metrics, d.metricsHosts, n.MetricsHandler(), log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	if d.ui != "" {
		_, stopUI, err := ui.Serve(d.ui, n, log)
		if err != nil {
			return explainListenError(err, "--ui", d.ui)
		}
		defer stopUI()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(adminLn) }()
	st := n.Status()
	log.Info("node running", "name", st.Name, "mesh", st.Mesh, "role", st.Role,
		"address", addrString(n.Addr()), "admin", d.admin, "static_links", len(d.node.StaticLinks))
	// Up, with SIGHUP handled: a service manager that waits for this
	// (systemd, Type=notify) sends its reloads only from now on.
	running := fmt.Sprintf("running as %s in mesh %s on %s", st.Name, st.Mesh, addrString(n.Addr()))
	notify := func(err error) {
		if err != nil {
			log.Warn("could not tell the service manager the daemon's state", "err", err)
		}
	}
	notify(sdnotify.Ready(running))

wait:
	for {
		select {
		case <-ctx.Done():
			notify(sdnotify.Stopping())
			log.Info("shutting down: draining, open circuits get the drain timeout to finish", "drain_timeout", max(d.node.GracePeriod, 0))
			break wait
		case <-hup:
			notify(sdnotify.Reloading())
			status := running + "; last reload applied"
			if err := dn.ReloadIdentity(); err != nil {
				log.Warn("SIGHUP: reload failed: nothing changed, the identity and the policy in force are kept", "err", err)
				status = running + "; last reload failed, nothing changed (see the log)"
			}
			notify(sdnotify.Ready(status))
		case err := <-served:
			if err != nil {
				return fmt.Errorf("admin API: %w", err)
			}
			break wait
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			log.Warn("close", "err", err)
		}
	case s := <-d.stop:
		log.Warn("second signal while draining: ending the drain now; open circuits and tunnels are cut", "signal", s.String())
		cutBy := time.Now().Add(goodbyeTimeout)
		n.CutDrain()
		srv.Close()
		// The node still says goodbye on its links and leaves the
		// gossip, so that neighbours learn of it now rather than
		// after their lost grace; a close stuck past goodbyeTimeout
		// is left to die with the process.
		select {
		case <-closed:
		case <-time.After(time.Until(cutBy)):
			drainCut = true // Close is stuck: the deferred one would wait too
			log.Warn("the node did not close within the goodbye timeout: exiting without it", "timeout", goodbyeTimeout)
		}
		flushWithin = max(min(time.Until(cutBy), cutFlushTimeout), 0)
		return fmt.Errorf("%w (%v signal received)", errDrainCut, s)
	}
	srv.Close()
	log.Info("stopped")
	return nil
}

// goodbyeTimeout bounds the shutdown after a second stop signal: the
// goodbye on every link (100 ms each, sent together), the last bytes of
// cut circuits (500 ms at most), the gossip shutdown and the flush of
// pending spans.
const goodbyeTimeout = 3 * time.Second

// cutFlushTimeout bounds the flush of pending spans after a second stop
// signal: a collector that does not answer delays that exit by no more.
const cutFlushTimeout = time.Second

// errDrainCut ends a daemon whose drain a second stop signal cut short:
// the circuits still open were cut, so the exit status is 1.
var errDrainCut = errors.New("stopped without finishing the drain: open circuits were cut")

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func newLogger(w io.Writer, level slog.Level, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// explainStartError says when the link address (--listen, UDP) or the
// gossip address (--gossip, TCP and UDP; "" when off) is taken, whatever
// shape the node's error has: memberlist's does not wrap the cause, so
// the addresses are tried again.
func explainStartError(err error, listen, gossip string) error {
	if taken("udp", listen) {
		return addrInUse("--listen", "UDP", listen)
	}
	for _, network := range []string{"tcp", "udp"} {
		if gossip != "" && taken(network, gossip) {
			return addrInUse("--gossip", strings.ToUpper(network), gossip)
		}
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return addrInUse("--listen", "UDP", listen)
	}
	return fmt.Errorf("start node: %w", err)
}

// taken reports whether another socket holds addr on network ("tcp" or
// "udp"), by binding it and letting go at once.
func taken(network, addr string) bool {
	var c io.Closer
	var err error
	if network == "tcp" {
		c, err = net.Listen(network, addr)
	} else {
		c, err = net.ListenPacket(network, addr)
	}
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	c.Close()
	return false
}

func explainListenError(err error, flag, addr string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return addrInUse(flag, "TCP", addr)
	}
	return fmt.Errorf("%s %s: %w", flag, addr, err)
}

func addrInUse(flag, proto, addr string) error {
	return fmt.Errorf("%w: %s %s (is another circuitmesh running? choose another with %s)",
		syscall.EADDRINUSE, proto, addr, flag)
}

// A scrape of /metrics costs the daemon a gathering and encoding of every
// metric (about 1 to 3 ms of CPU) for a request of a few bytes: a source
// gets at most 2 a second (burst 4), all sources together 10 (burst 20),
// far more than Prometheus servers scraping every few seconds need.
var (
	scrapesPerSource = httpserve.Rate{PerSecond: 2, Burst: 4}
	scrapesTotal     = httpserve.Rate{PerSecond: 10, Burst: 20}
)

// serveMetrics serves handler at /metrics on addr (nothing when empty), to
// no request a web page made (httpserve.NoWebPages) and, on a loopback
// address, to none naming a host other than an IP address, localhost or
// one of hosts (--metrics-host: a reverse proxy in front that passes its
// clients' Host) (httpserve.LiteralHostOnly), against a web page that
// rebinds a name of its own to the address.
func serveMetrics(addr string, hosts []string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, explainListenError(err, "--metrics", addr)
	}
	metrics := httpserve.NoWebPages(httpserve.RateLimit(h, scrapesPerSource, scrapesTotal))
	if httpserve.Loopback(ln.Addr().String()) {
		metrics = httpserve.LiteralHostOnly("/metrics on a loopback address answers only to an IP address, localhost or a name given with --metrics-host in the URL", hosts, metrics)
	} else {
		log.Warn("metrics listen beyond loopback and have no authentication: whoever reaches the port reads them", "address", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	stop = httpserve.Serve(ln, mux, httpserve.Default, "metrics", log)
	log.Info("serving metrics", "address", ln.Addr().String(), "path", "/metrics")
	return stop, nil
}
