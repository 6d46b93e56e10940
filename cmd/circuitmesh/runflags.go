package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
	"github.com/circuitmesh/circuitmesh/node/topology"
)

// defaultListen is the UDP address of a daemon's QUIC links.
const defaultListen = "0.0.0.0:4242"

func runFlags() []cli.Flag {
	return daemonFlags(
		&cli.StringFlag{Name: "name", Usage: "node `NAME` (default: the name in the certificate)", EnvVars: env("name")},
		&cli.StringFlag{Name: "mesh", Usage: "mesh `NAME` (default: the certificate's mesh)", EnvVars: env("mesh")},
		&cli.StringFlag{Name: "listen", Usage: "UDP `HOST:PORT` for QUIC links", Value: defaultListen, EnvVars: env("listen")},
		&cli.StringSliceFlag{Name: "link", Usage: "keep a link to `HOST:PORT` (repeatable; redialled with backoff)", EnvVars: env("link")},
		&cli.BoolFlag{Name: "leaf", Usage: "never forward circuits for others", EnvVars: env("leaf")},
		&cli.PathFlag{Name: "ca", Usage: "mesh CA certificate `FILE` (default: <data-dir>/ca.crt)", EnvVars: env("ca")},
		&cli.PathFlag{Name: "cert", Usage: "node certificate `FILE` (default: <data-dir>/node.crt)", EnvVars: env("cert")},
		&cli.PathFlag{Name: "key", Usage: "node key `FILE` (default: <data-dir>/node.key)", EnvVars: env("key")},
		&cli.BoolFlag{Name: "insecure", Usage: "DEVELOPMENT ONLY: throwaway identity, accept any peer", EnvVars: env("insecure")},
		&cli.StringFlag{Name: "e2e", Usage: "end-to-end circuit security `MODE`: on, or off (only when every router is trusted; relays can then read and change circuits)", Value: "on", EnvVars: env("e2e")},
		&cli.StringSliceFlag{Name: "expose", Usage: "publish the local TCP service `NAME=HOST:PORT` (repeatable)", EnvVars: env("expose")},
		&cli.StringSliceFlag{Name: "forward", Usage: "tunnel `LISTEN=PEER/SERVICE`: a local TCP port to a mesh service, opened as this node (repeatable; LISTEN is HOST:PORT, a bare PORT on 127.0.0.1, or :PORT on every interface)", EnvVars: env("forward")},
		&cli.StringFlag{Name: "gossip", Usage: "memberlist gossip `ADDR` (TCP and UDP) for discovery; empty disables it", EnvVars: env("gossip")},
		&cli.StringFlag{Name: "gossip-advertise", Usage: "gossip `IP:PORT` announced to the other members when they reach --gossip at another address or port (NAT, a port forward)", EnvVars: env("gossip-advertise")},
		&cli.StringFlag{Name: "advertise", Usage: "QUIC link `IP:PORT` announced to the other members in this node's signed gossip metadata when they reach --listen at another address or port (NAT, a port forward)", EnvVars: env("advertise")},
		&cli.StringSliceFlag{Name: "join", Usage: "gossip `ADDR` of a member to join (repeatable)", EnvVars: env("join")},
		&cli.StringFlag{Name: "gossip-key", Usage: "base64 gossip encryption `KEY` (16, 24 or 32 bytes); only from the environment or the config file, never the command line", EnvVars: env("gossip-key")},
		&cli.PathFlag{Name: "gossip-key-file", Usage: "`FILE` holding the base64 gossip encryption key", EnvVars: env("gossip-key-file")},
		&cli.PathFlag{Name: "policy-file", Usage: "authorization policy `FILE` (\"allow dial from=group:ops service=ssh\" lines; reread on SIGHUP); or \"policy = RULE\" lines in the --config file", EnvVars: env("policy-file")},
		// Unset, these take node's defaults, not the flags' zero values:
		// DefaultText shows those in the help.
		&cli.IntFlag{Name: "target-links", Usage: "`N` links discovery aims for on a router", DefaultText: strconv.Itoa(topology.DefaultTarget), EnvVars: env("target-links")},
		&cli.IntFlag{Name: "max-links", Usage: "hard bound `N` on links made or accepted, static links excluded (unset: max(" + strconv.Itoa(topology.DefaultMax) + ", 2×target-links))", DefaultText: strconv.Itoa(max(topology.DefaultMax, 2*topology.DefaultTarget)), EnvVars: env("max-links")},
		&cli.IntFlag{Name: "static-in-links", Usage: "`N` incoming links that their dialler keeps as static are kept on top of --max-links, the oldest first (-1: none)", DefaultText: strconv.Itoa(topology.DefaultStatic), EnvVars: env("static-in-links")},
		&cli.DurationFlag{Name: "drain-timeout", Usage: "on SIGTERM or SIGINT, let open circuits and tunnels finish for up to `DURATION` (0: close at once; a second signal ends the drain at once, exit status 1)", Value: 10 * time.Second, EnvVars: env("drain-timeout")},
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on `ADDR` at /metrics, without authentication (:PORT listens on every interface)", EnvVars: env("metrics")},
		&cli.StringSliceFlag{Name: "metrics-host", Usage: "on a loopback --metrics ADDR, answer requests naming host `NAME` too (repeatable; a reverse proxy in front that passes its clients' Host header); by default only an IP address or localhost, against web pages rebinding a name to the address", EnvVars: env("metrics-host")},
		&cli.StringFlag{Name: "ui", Usage: "serve the live mesh page on the TCP `ADDR` (off by default; it shows the topology to whoever reaches ADDR)", EnvVars: env("ui")},
		&cli.BoolFlag{Name: "no-info", Usage: "do not answer the built-in info service (other nodes' graph then lists this node as unreachable)", EnvVars: env("no-info")},
		&cli.StringSliceFlag{Name: "link-cost", Usage: "pin the cost of the link to a peer, `PEER=COST` (repeatable; see `circuitmesh link-cost`)", EnvVars: env("link-cost")},
		&cli.StringFlag{Name: "log-level", Usage: "`LEVEL`: debug, info, warn or error", Value: "info", EnvVars: env("log-level")},
		&cli.StringFlag{Name: "log-format", Usage: "`FORMAT`: text or json", Value: "text", EnvVars: env("log-format")},
	)
}

// daemonConfig is everything `run` needs, built from flags.
type daemonConfig struct {
	node     node.Config
	admin    string
	exposes  []exposeSpec
	forwards []forwardSpec
	metrics  string
	// metricsHosts are the host names a loopback /metrics answers besides
	// IP addresses and localhost.
	metricsHosts []string
	ui           string
	policy       policySource
	level        slog.Level
	json         bool
	// hup gets SIGHUP (reload) from the start of `run` on; nil: runDaemon
	// asks for it itself.
	hup <-chan os.Signal
	// stop gets SIGINT and SIGTERM: the first stops the daemon (it
	// drains), a second cuts the drain short. nil: only ctx stops it.
	stop <-chan os.Signal
	// checkConfig checks the --config file again as `run` did at start,
	// with the same command line and environment (nil: no config file).
	checkConfig func() error
}

// checkRunConfig checks the --config file that the `run` command line
// args (os.Args, the program first) names as the daemon does at start:
// every line of the file a known flag, once unless repeatable, every value
// of the right type and passing checkDaemonFlags beside the other flags,
// and no policy lines beside --policy-file (daemonPolicySource). A value the command line or the environment overrides is checked too:
// the file would be refused once they no longer do. It reads neither the
// identity nor the policy, which a reload reads itself.
func checkRunConfig(args []string) error {
	app := &cli.App{
		Name:           "circuitmesh",
		Writer:         io.Discard,
		ErrWriter:      io.Discard,
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Commands: []*cli.Command{{
			Name:            "run",
			Flags:           runFlags(),
			OnUsageError:    onUsageError,
			HideHelpCommand: true,
			Before:          func(c *cli.Context) error { return applyConfigFile(c, true, true) },
			Action: func(c *cli.Context) error {
				if _, err := checkDaemonFlags(c); err != nil {
					return err
				}
				_, err := daemonPolicySource(c)
				return err
			},
		}},
	}
	return app.Run(interspersed(app, args))
}

type exposeSpec struct{ service, target string }

type forwardSpec struct{ listen, peer, service string }

// parseExposeFlag parses --expose NAME=HOST:PORT, cut at the last '='
// (a service name may hold one, a HOST:PORT may not).
func parseExposeFlag(s string) (exposeSpec, error) {
	i := strings.LastIndexByte(s, '=')
	if i < 0 {
		return exposeSpec{}, usagef("--expose %q: want NAME=HOST:PORT", s)
	}
	e, err := parseExpose(s[:i], s[i+1:])
	if err != nil {
		return e, usagef("--expose %q: %v", s, err)
	}
	return e, nil
}

// parseExpose checks a service name and the TCP address behind it (a
// resolvable host and a port from 1 to 65535).
func parseExpose(name, target string) (exposeSpec, error) {
	if err := admin.ValidateService(name); err != nil {
		return exposeSpec{}, unwrapBadRequest(err)
	}
	if err := admin.ValidateTarget(context.Background(), target); err != nil {
		return exposeSpec{}, unwrapBadRequest(err)
	}
	return exposeSpec{name, target}, nil
}

// parseForwardFlag parses --forward LISTEN=PEER/SERVICE.
func parseForwardFlag(s string) (forwardSpec, error) {
	listen, dest, ok := strings.Cut(s, "=")
	if !ok {
		return forwardSpec{}, usagef("--forward %q: want LISTEN=PEER/SERVICE", s)
	}
	f, err := parseForward(listen, dest)
	if err != nil {
		return f, usagef("--forward %q: %v", s, err)
	}
	return f, nil
}

// parseForward checks a listen address (a bare port listens on loopback)
// and a PEER/SERVICE destination.
func parseForward(listen, dest string) (forwardSpec, error) {
	peer, service, ok := strings.Cut(dest, "/")
	if !ok {
		return forwardSpec{}, fmt.Errorf("destination %q: want PEER/SERVICE", dest)
	}
	listen, err := normalizeListen(listen)
	if err != nil {
		return forwardSpec{}, err
	}
	if err := admin.ValidateForward(listen, peer, service); err != nil {
		return forwardSpec{}, unwrapBadRequest(err)
	}
	return forwardSpec{listen, peer, service}, nil
}

// resolveForward checks that the listen host of a forward parseForward
// took resolves, as parseExpose checks the host behind a service; what
// names the argument in the usage error. parseForward leaves the lookup
// out, so that fuzzing it queries no DNS.
func resolveForward(what string, f forwardSpec) error {
	if err := admin.ValidateListenHost(context.Background(), f.listen); err != nil {
		return usagef("%s: %v", what, unwrapBadRequest(err))
	}
	return nil
}

// normalizeListen accepts HOST:PORT, :PORT or a bare PORT (loopback).
func normalizeListen(s string) (string, error) {
	if !strings.Contains(s, ":") {
		s = "127.0.0.1:" + s
	}
	if _, err := admin.ValidateHostPort(s, true); err != nil {
		return "", unwrapBadRequest(err)
	}
	return s, nil
}

// unwrapBadRequest drops the admin API's ": bad request" suffix from a
// validation error shown on the command line.
func unwrapBadRequest(err error) error {
	return errors.New(strings.TrimSuffix(err.Error(), ": "+admin.ErrBadRequest.Error()))
}

// parseLinkCost parses PEER=COST (COST a number, or auto).
func parseLinkCost(s string) (string, uint32, error) {
	peer, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", 0, fmt.Errorf("want PEER=COST")
	}
	cost, err := parseCost(v)
	return peer, cost, err
}

// parseCost parses a link cost: a number, or auto (0, the measured cost).
func parseCost(v string) (uint32, error) {
	if v == "auto" {
		return 0, nil
	}
	c, err := strconv.ParseUint(v, 10, 32)
	if err != nil || c < uint64(links.MinCost) || c > uint64(node.MaxLinkCost) {
		return 0, fmt.Errorf("cost %q: want a number from %d to %d, or auto", v, links.MinCost, node.MaxLinkCost)
	}
	return uint32(c), nil
}

// buildDaemonConfig maps the flags of `run` onto node.Config. It loads the
// identity (unless --insecure) so that a missing one is reported with the
// command that creates it.
func buildDaemonConfig(c *cli.Context) (daemonConfig, error) {
	d, err := checkDaemonFlags(c)
	if err != nil {
		return d, err
	}
	if d.policy, d.node.Policy, err = daemonPolicy(c); err != nil {
		return d, err
	}
	if d.node.Insecure {
		return d, nil
	}
	id, err := loadNodeIdentity(c, d.node.DataDir)
	if err != nil {
		return d, err
	}
	// The node rereads these files on reload (SIGHUP, circuitmesh reload).
	d.node.CertFile, d.node.KeyFile, d.node.CAFile = identityPaths(c, d.node.DataDir)
	if d.node.Name != "" && d.node.Name != id.Node {
		return d, atConfigLine(c, usagef("--name %q differs from the certificate's node name %q", d.node.Name, id.Node), "name")
	}
	if d.node.Mesh != "" && d.node.Mesh != id.Mesh {
		return d, atConfigLine(c, usagef("--mesh %q differs from the certificate's mesh %q", d.node.Mesh, id.Mesh), "mesh")
	}
	d.node.Identity, d.node.Name, d.node.Mesh = id, id.Node, id.Mesh
	return d, nil
}

// checkDaemonFlags is buildDaemonConfig without the policy and the
// identity: it checks every value the flags hold, naming the config file's
// line of a value that came from it. A reload runs it again on the config
// file (see daemonNode.Reload).
func checkDaemonFlags(c *cli.Context) (daemonConfig, error) {
	var d daemonConfig
	dataDir, err := filepath.Abs(c.Path("data-dir"))
	if err != nil {
		return d, atConfigLine(c, fmt.Errorf("--data-dir: %w", err), "data-dir")
	}
	d.admin = c.Path("admin")
	if d.admin == "" {
		d.admin = filepath.Join(dataDir, adminSocketName)
	}
	d.metrics = c.String("metrics")
	for _, h := range c.StringSlice("metrics-host") {
		if h == "" || strings.ContainsAny(h, ":/[] ") {
			return d, atConfigValue(c, usagef("--metrics-host %q: want a host name, without port", h), "metrics-host", h)
		}
		d.metricsHosts = append(d.metricsHosts, h)
	}
	if len(d.metricsHosts) > 0 && d.metrics == "" {
		return d, atConfigLine(c, usagef("--metrics-host needs --metrics ADDR: it names a host /metrics answers"), "metrics-host")
	}
	d.ui = c.String("ui")
	if err := d.level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return d, atConfigLine(c, usagef("--log-level %q: want debug, info, warn or error", c.String("log-level")), "log-level")
	}
	switch c.String("log-format") {
	case "text":
	case "json":
		d.json = true
	default:
		return d, atConfigLine(c, usagef("--log-format %q: want text or json", c.String("log-format")), "log-format")
	}
	// The addresses node.New would refuse, named as flags.
	listen := c.String("listen")
	if err := node.CheckQUICAddr(listen, true); err != nil {
		return d, atConfigLine(c, usagef("--listen %w", err), "listen")
	}
	for _, l := range c.StringSlice("link") {
		if err := node.CheckQUICAddr(l, false); err != nil {
			return d, atConfigValue(c, usagef("--link %w", err), "link", l)
		}
	}
	if g := c.String("gossip"); g != "" {
		if err := node.CheckGossipAddr(g); err != nil {
			return d, atConfigLine(c, usagef("--gossip %w", err), "gossip")
		}
	}
	for _, s := range c.StringSlice("expose") {
		e, err := parseExposeFlag(s)
		if err != nil {
			return d, atConfigValue(c, err, "expose", s)
		}
		d.exposes = append(d.exposes, e)
	}
	for _, s := range c.StringSlice("forward") {
		f, err := parseForwardFlag(s)
		if err == nil {
			err = resolveForward(fmt.Sprintf("--forward %q", s), f)
		}
		if err != nil {
			return d, atConfigValue(c, err, "forward", s)
		}
		d.forwards = append(d.forwards, f)
	}
	costs := map[string]uint32{}
	for _, s := range c.StringSlice("link-cost") {
		peer, cost, err := parseLinkCost(s)
		if err != nil {
			return d, atConfigValue(c, usagef("--link-cost %q: %v", s, err), "link-cost", s)
		}
		if cost != 0 {
			costs[peer] = cost
		}
	}
	key, err := gossipKey(c)
	if err != nil {
		return d, atConfigLine(c, err, "gossip-key-file", "gossip-key")
	}
	var e2e node.E2E
	switch c.String("e2e") {
	case "on":
	case "off":
		e2e = node.E2EOff
	default:
		return d, atConfigLine(c, usagef("--e2e: want on or off, got %q", c.String("e2e")), "e2e")
	}
	d.node = node.Config{
		E2E:         e2e,
		Name:        c.String("name"),
		Mesh:        c.String("mesh"),
		DataDir:     dataDir,
		Insecure:    c.Bool("insecure"),
		ListenAddr:  listen,
		StaticLinks: c.StringSlice("link"),
		Leaf:        c.Bool("leaf"),
		DisableInfo: c.Bool("no-info"),
		LinkCosts:   costs,
		Discovery: node.DiscoveryConfig{
			BindAddr:          c.String("gossip"),
			AdvertiseAddr:     c.String("gossip-advertise"),
			LinkAdvertiseAddr: c.String("advertise"),
			Join:              c.StringSlice("join"),
			Key:               key,
			TargetLinks:       c.Int("target-links"),
			MaxLinks:          c.Int("max-links"),

			StaticInLinks: c.Int("static-in-links"),
		},
	}
	if t, m := c.Int("target-links"), c.Int("max-links"); t < 0 || m < 0 || (m > 0 && m < max(t, 1)) {
		return d, atConfigLine(c, usagef("--max-links %d must be at least --target-links %d (both positive)", m, t), "max-links", "target-links")
	}
	switch drain := c.Duration("drain-timeout"); {
	case drain < 0:
		return d, atConfigLine(c, usagef("--drain-timeout %v: want a duration >= 0", drain), "drain-timeout")
	case drain == 0:
		d.node.GracePeriod = -1 // close at once
	default:
		d.node.GracePeriod = drain
	}
	if len(d.node.Discovery.Join) > 0 && d.node.Discovery.BindAddr == "" {
		return d, atConfigLine(c, usagef("--join needs --gossip ADDR (the local gossip address)"), "join")
	}
	for _, j := range d.node.Discovery.Join {
		if err := node.CheckJoin(j); err != nil {
			return d, atConfigValue(c, usagef("--join: %w", err), "join", j)
		}
	}
	for _, flag := range []string{"gossip-advertise", "advertise"} {
		a := c.String(flag)
		if a == "" {
			continue
		}
		if d.node.Discovery.BindAddr == "" {
			return d, atConfigLine(c, usagef("--%s needs --gossip ADDR: the address is announced by gossip", flag), flag)
		}
		if _, err := node.ParseAdvertiseAddr(a); err != nil {
			return d, atConfigLine(c, usagef("--%s: %w", flag, err), flag)
		}
	}
	if d.node.Insecure && d.node.Name == "" {
		return d, atConfigLine(c, usagef("--insecure needs --name"), "insecure")
	}
	return d, nil
}

// identityPaths returns the certificate, key and CA files: the --cert,
// --key and --ca flags, else those in the data dir.
func identityPaths(c *cli.Context, dataDir string) (cert, key, ca string) {
	pick := func(flag, file string) string {
		if p := c.Path(flag); p != "" {
			return p
		}
		return filepath.Join(dataDir, file)
	}
	return pick("cert", identity.CertFile), pick("key", identity.KeyFile), pick("ca", identity.CACertFile)
}

// loadNodeIdentity loads node.crt, node.key and ca.crt from the data dir
// (or the --cert/--key/--ca files) and says how to create them if missing.
func loadNodeIdentity(c *cli.Context, dataDir string) (*identity.Identity, error) {
	id, err := identity.LoadIdentity(identityPaths(c, dataDir))
	if errors.Is(err, identity.ErrNoIdentity) {
		name := c.String("name")
		if name == "" {
			name = "NAME"
		}
		return nil, fmt.Errorf("%w; create it with `circuitmesh init --name %s --data-dir %s` (or use --insecure for development)", err, name, dataDir)
	}
	return id, err
}

// gossipKey reads the gossip key from --gossip-key-file (which must be
// private: identity.CheckPrivate) or --gossip-key (the environment or the
// config file: see refuseSecretArgs). A key file that holds no key (empty
// or blank) is refused as a short key is, not taken as no key: the node
// would gossip in plaintext.
func gossipKey(c *cli.Context) ([]byte, error) {
	k, from := c.String("gossip-key"), "--gossip-key"
	if p := c.Path("gossip-key-file"); p != "" {
		if k != "" {
			return nil, usagef("--gossip-key and --gossip-key-file are exclusive")
		}
		b, err := identity.ReadPrivate(p)
		if err != nil {
			return nil, usagef("--gossip-key-file: %v", err)
		}
		k, from = strings.TrimSpace(string(b)), "--gossip-key-file "+p
	}
	if k == "" && from == "--gossip-key" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || (len(b) != 16 && len(b) != 24 && len(b) != 32) {
		return nil, usagef("%s: want 16, 24 or 32 bytes in base64 (make one with `head -c 32 /dev/urandom | base64`)", from)
	}
	return b, nil
}

// refuseSecretArgs refuses a gossip key on the command line, where every
// local user sees it (ps, /proc/PID/cmdline): it belongs in
// --gossip-key-file, CIRCUITMESH_GOSSIP_KEY or the config file.
func refuseSecretArgs(args []string) error {
	for _, a := range args {
		if a == "--" {
			return nil
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "gossip-key" {
			return usagef("--gossip-key on the command line is visible to every local user; use --gossip-key-file FILE or %s", env("gossip-key")[0])
		}
	}
	return nil
}
