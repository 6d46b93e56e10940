package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
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
		&cli.StringSliceFlag{Name: "expose", Usage: "publish the local TCP service `NAME=HOST:PORT` (repeatable)", EnvVars: env("expose")},
		&cli.StringSliceFlag{Name: "forward", Usage: "tunnel `LISTEN=PEER/SERVICE`: a local TCP port to a mesh service (repeatable)", EnvVars: env("forward")},
		&cli.StringFlag{Name: "gossip", Usage: "memberlist gossip `ADDR` (TCP and UDP) for discovery; empty disables it", EnvVars: env("gossip")},
		&cli.StringSliceFlag{Name: "join", Usage: "gossip `ADDR` of a member to join (repeatable)", EnvVars: env("join")},
		&cli.StringFlag{Name: "gossip-key", Usage: "base64 gossip encryption `KEY` (16, 24 or 32 bytes)", EnvVars: env("gossip-key")},
		&cli.DurationFlag{Name: "drain-timeout", Usage: "on SIGTERM, let open circuits and tunnels finish for up to `DURATION` (0: close at once)", Value: 10 * time.Second, EnvVars: env("drain-timeout")},
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on `ADDR` at /metrics", EnvVars: env("metrics")},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: env("log-level")},
		&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: env("log-format")},
	)
}

// daemonConfig is everything `run` needs, built from flags.
type daemonConfig struct {
	node     node.Config
	admin    string
	exposes  []exposeSpec
	forwards []forwardSpec
	metrics  string
	level    slog.Level
	json     bool
}

type exposeSpec struct{ service, target string }

type forwardSpec struct{ listen, peer, service string }

// parseExpose parses NAME=HOST:PORT.
func parseExpose(s string) (exposeSpec, error) {
	name, target, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return exposeSpec{}, usagef("--expose %q: want NAME=HOST:PORT", s)
	}
	if err := checkHostPort(target); err != nil {
		return exposeSpec{}, usagef("--expose %q: %v", s, err)
	}
	return exposeSpec{name, target}, nil
}

// parseForward parses LISTEN=PEER/SERVICE; a bare port listens on loopback.
func parseForward(s string) (forwardSpec, error) {
	listen, dest, ok := strings.Cut(s, "=")
	if !ok {
		return forwardSpec{}, usagef("--forward %q: want LISTEN=PEER/SERVICE", s)
	}
	peer, service, err := parseDest(dest)
	if err != nil {
		return forwardSpec{}, usagef("--forward %q: %v", s, err)
	}
	listen, err = normalizeListen(listen)
	if err != nil {
		return forwardSpec{}, usagef("--forward %q: %v", s, err)
	}
	return forwardSpec{listen, peer, service}, nil
}

// parseDest parses PEER/SERVICE.
func parseDest(s string) (peer, service string, err error) {
	peer, service, ok := strings.Cut(s, "/")
	if !ok || peer == "" || service == "" {
		return "", "", fmt.Errorf("want PEER/SERVICE, got %q", s)
	}
	return peer, service, nil
}

// normalizeListen accepts HOST:PORT, :PORT or a bare PORT (loopback).
func normalizeListen(s string) (string, error) {
	if !strings.Contains(s, ":") {
		s = "127.0.0.1:" + s
	}
	if err := checkHostPort(s); err != nil {
		return "", err
	}
	return s, nil
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want HOST:PORT: %v", err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// buildDaemonConfig maps the flags of `run` onto node.Config. It loads the
// identity (unless --insecure) so that a missing one is reported with the
// command that creates it.
func buildDaemonConfig(c *cli.Context) (daemonConfig, error) {
	var d daemonConfig
	dataDir, err := filepath.Abs(c.Path("data-dir"))
	if err != nil {
		return d, fmt.Errorf("--data-dir: %w", err)
	}
	d.admin = c.Path("admin")
	if d.admin == "" {
		d.admin = filepath.Join(dataDir, adminSocketName)
	}
	d.metrics = c.String("metrics")
	if err := d.level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return d, usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	switch c.String("log-format") {
	case "text":
	case "json":
		d.json = true
	default:
		return d, usagef("--log-format %q: want text or json", c.String("log-format"))
	}
	listen := c.String("listen")
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return d, usagef("--listen %q: want HOST:PORT: %v", listen, err)
	}
	for _, l := range c.StringSlice("link") {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return d, usagef("--link %q: want HOST:PORT: %v", l, err)
		}
	}
	for _, s := range c.StringSlice("expose") {
		e, err := parseExpose(s)
		if err != nil {
			return d, err
		}
		d.exposes = append(d.exposes, e)
	}
	for _, s := range c.StringSlice("forward") {
		f, err := parseForward(s)
		if err != nil {
			return d, err
		}
		d.forwards = append(d.forwards, f)
	}
	var key []byte
	if k := c.String("gossip-key"); k != "" {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || (len(b) != 16 && len(b) != 24 && len(b) != 32) {
			return d, usagef("--gossip-key: want 16, 24 or 32 bytes in base64 (make one with `head -c 32 /dev/urandom | base64`)")
		}
		key = b
	}
	d.node = node.Config{
		Name:        c.String("name"),
		Mesh:        c.String("mesh"),
		DataDir:     dataDir,
		Insecure:    c.Bool("insecure"),
		ListenAddr:  listen,
		StaticLinks: c.StringSlice("link"),
		Leaf:        c.Bool("leaf"),
		Discovery: node.DiscoveryConfig{
			BindAddr: c.String("gossip"),
			Join:     c.StringSlice("join"),
			Key:      key,
		},
	}
	switch drain := c.Duration("drain-timeout"); {
	case drain < 0:
		return d, usagef("--drain-timeout %v: want a duration >= 0", drain)
	case drain == 0:
		d.node.GracePeriod = -1 // close at once
	default:
		d.node.GracePeriod = drain
	}
	if len(d.node.Discovery.Join) > 0 && d.node.Discovery.BindAddr == "" {
		return d, usagef("--join needs --gossip ADDR (the local gossip address)")
	}
	if d.node.Insecure {
		if d.node.Name == "" {
			return d, usagef("--insecure needs --name")
		}
		return d, nil
	}
	id, err := loadNodeIdentity(c, dataDir)
	if err != nil {
		return d, err
	}
	if d.node.Name != "" && d.node.Name != id.Node {
		return d, usagef("--name %q differs from the certificate's node name %q", d.node.Name, id.Node)
	}
	if d.node.Mesh != "" && d.node.Mesh != id.Mesh {
		return d, usagef("--mesh %q differs from the certificate's mesh %q", d.node.Mesh, id.Mesh)
	}
	d.node.Identity, d.node.Name, d.node.Mesh = id, id.Node, id.Mesh
	return d, nil
}

// loadNodeIdentity loads node.crt, node.key and ca.crt from the data dir
// (or the --cert/--key/--ca files) and says how to create them if missing.
func loadNodeIdentity(c *cli.Context, dataDir string) (*identity.Identity, error) {
	pick := func(flag, file string) string {
		if p := c.Path(flag); p != "" {
			return p
		}
		return filepath.Join(dataDir, file)
	}
	id, err := identity.LoadIdentity(pick("cert", identity.CertFile), pick("key", identity.KeyFile), pick("ca", identity.CACertFile))
	if errors.Is(err, identity.ErrNoIdentity) {
		name := c.String("name")
		if name == "" {
			name = "NAME"
		}
		return nil, fmt.Errorf("%w; create it with `circuitmesh init --name %s --data-dir %s` (or use --insecure for development)", err, name, dataDir)
	}
	return id, err
}
