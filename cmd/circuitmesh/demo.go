package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// The demo mesh: a diamond a–{b,c}–d plus a tail d–e.
var (
	demoNodes = []string{"a", "b", "c", "d", "e"}
	demoLinks = [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}, {"d", "e"}}
)

const demoService = "sink"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run five nodes in this process and show routing, relaying and failover",
		Description: `Needs no setup: starts nodes a–{b,c}–d–e on loopback QUIC with a throwaway
CA, sends bytes from a to e across the relays and checks them, kills the relay
the circuit used and shows the next circuit taking the other path.

Example:
   circuitmesh demo --size 64`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "size", Usage: "send `MIB` MiB over each circuit", Value: 16},
			&cli.StringFlag{Name: "log-level", Usage: "node log `LEVEL` (debug, info, warn, error)", Value: "error"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up after `DURATION` (a slow machine may need more)", Value: 2 * time.Minute},
		},
		Action: func(c *cli.Context) error {
			if err := exactArgs(c); err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
			}
			if c.Int("size") < 1 {
				return usagef("--size must be at least 1 (MiB)")
			}
			if c.Duration("timeout") <= 0 {
				return usagef("--timeout must be positive")
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			d := &demo{w: c.App.Writer, log: newLogger(c.App.ErrWriter, level, false), size: c.Int("size") << 20}
			defer d.close()
			return d.run(ctx)
		},
	}
}

type demo struct {
	w       io.Writer
	log     *slog.Logger
	size    int
	nodes   map[string]*node.Node
	sockets map[string]*net.UDPConn // each node's UDP socket, so a relay can crash
	flush   []func(time.Duration)   // flush each node's pending spans
}

func (d *demo) run(ctx context.Context) error {
	start := time.Now()
	if err := d.start(ctx); err != nil {
		return err
	}
	a := d.nodes["a"]
	if _, err := waitRoute(ctx, a, "e", func(node.PeerInfo) bool { return true }); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "started %d nodes on loopback QUIC (a–{b,c}–d–e) in %s; routes at a:\n\n",
		len(d.nodes), fmtDuration(time.Since(start)))
	if err := printTable(d.w, []string{"DESTINATION", "NEXT HOP", "COST", "HOPS", "ALTERNATES"}, demoRouteRows(a.Peers())); err != nil {
		return err
	}
	fmt.Fprintln(d.w)
	if p, err := a.Ping(ctx, "e"); err == nil {
		fmt.Fprintf(d.w, "ping e via %s: open %s, rtt %s\n", fmtPath(p.Path), fmtDuration(p.Open), fmtDuration(p.RTT))
	} else {
		return fmt.Errorf("ping e: %w", err)
	}
	path, err := d.transfer(ctx, a)
	if err != nil {
		return err
	}
	if len(path) < 4 {
		return fmt.Errorf("circuit took path %v, expected at least two relays", path)
	}
	relay := path[1]
	events, unsubscribe, err := a.Subscribe(64)
	if err != nil {
		return err
	}
	defer unsubscribe()
	before, _ := a.Peer("e")
	fmt.Fprintf(d.w, "killing relay %s (its socket closes: no goodbye, as if the process died)\n", relay)
	killed := time.Now()
	d.sockets[relay].Close()
	if err := waitLinkDown(ctx, events, relay); err != nil {
		return err
	}
	detected := time.Since(killed)
	after, err := waitRoute(ctx, a, "e", func(p node.PeerInfo) bool { return p.NextHop != relay })
	if err != nil {
		return err
	}
	if before.NextHop == relay {
		fmt.Fprintf(d.w, "a detected the dead relay after %s and routed to e via %s %s after the kill\n",
			fmtDuration(detected), after.NextHop, fmtDuration(time.Since(killed)))
	} else {
		fmt.Fprintf(d.w, "a detected the dead relay after %s (its route to e had already moved to %s)\n",
			fmtDuration(detected), after.NextHop)
	}
	path2, err := d.transfer(ctx, a)
	if err != nil {
		return err
	}
	if slices.Contains(path2, relay) {
		return fmt.Errorf("circuit after killing %s still crossed it: %v", relay, path2)
	}
	fmt.Fprintf(d.w, "demo finished in %s\n", fmtDuration(time.Since(start)))
	return nil
}

// start creates the CA, starts every node and links them.
func (d *demo) start(ctx context.Context) error {
	ca, err := identity.NewCA("demo", time.Hour)
	if err != nil {
		return err
	}
	d.nodes = map[string]*node.Node{}
	d.sockets = map[string]*net.UDPConn{}
	for _, name := range demoNodes {
		id, err := ca.Issue(name, time.Hour)
		if err != nil {
			return err
		}
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		d.sockets[name] = pc
		// With the standard OTEL_* variables set, each node exports its
		// spans as a service instance of its own.
		tp, flush, err := tracerProvider(ctx, name, d.log)
		if err != nil {
			return err
		}
		d.flush = append(d.flush, flush)
		n, err := node.New(node.Config{Identity: id, Logger: d.log, GracePeriod: 200 * time.Millisecond, PacketConn: pc, TracerProvider: tp})
		if err != nil {
			return err
		}
		d.nodes[name] = n
		if err := n.Start(ctx); err != nil {
			return fmt.Errorf("start node %s: %w", name, err)
		}
	}
	for _, l := range demoLinks {
		if err := d.nodes[l[0]].Link(ctx, d.nodes[l[1]].Addr().String()); err != nil {
			return fmt.Errorf("link %s–%s: %w", l[0], l[1], err)
		}
	}
	ln, err := d.nodes["e"].Listen(demoService)
	if err != nil {
		return err
	}
	go serveSink(ln)
	return nil
}

func (d *demo) close() {
	for name, n := range d.nodes {
		n.Close() // closes its socket too
		delete(d.sockets, name)
	}
	for _, flush := range d.flush {
		flush(traceFlushTimeout)
	}
	for _, pc := range d.sockets {
		pc.Close()
	}
}

// serveSink answers each circuit with the SHA-256 of everything it read,
// and only if the circuit is sealed end to end.
func serveSink(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			h := sha256.New()
			if _, err := io.Copy(h, c); err == nil && c.(node.Conn).Sealed() {
				c.Write(h.Sum(nil))
			}
		}()
	}
}

// transfer sends d.size pseudo-random bytes from a to e's sink over a new
// circuit, checks the hash e computed and prints path and throughput.
func (d *demo) transfer(ctx context.Context, a *node.Node) ([]string, error) {
	c, err := a.DialWith(ctx, "e", demoService, node.DialOptions{RecordPath: true})
	if err != nil {
		return nil, fmt.Errorf("dial e/%s: %w", demoService, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	rng := rand.NewChaCha8([32]byte{1})
	h := sha256.New()
	buf := make([]byte, 64<<10)
	start := time.Now()
	for sent := 0; sent < d.size; sent += len(buf) {
		rng.Read(buf)
		h.Write(buf)
		if _, err := c.Write(buf); err != nil {
			return nil, fmt.Errorf("send to e: %w", err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		return nil, fmt.Errorf("half-close: %w", err)
	}
	sum := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, sum); err != nil {
		return nil, fmt.Errorf("read e's hash: %w", err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(sum, h.Sum(nil)) {
		return nil, errors.New("e received different bytes than a sent")
	}
	if !c.Sealed() {
		return nil, errors.New("the circuit to e is not sealed end to end")
	}
	path := c.Path()
	if len(path) < 3 {
		return nil, fmt.Errorf("the circuit to e recorded the path %q, not one through relays", path)
	}
	mib := float64(d.size) / (1 << 20)
	fmt.Fprintf(d.w, "circuit %s: %.0f MiB in %s = %.1f MiB/s, SHA-256 verified\n",
		fmtPath(path), mib, fmtDuration(elapsed), mib/elapsed.Seconds())
	fmt.Fprintf(d.w, "  sealed end to end (checked at a and at e, which authenticated each other): relays %s carried only ciphertext\n",
		termSafe(strings.Join(path[1:len(path)-1], ", ")))
	return path, nil
}

// waitLinkDown waits for the event that the link to peer went down.
func waitLinkDown(ctx context.Context, events <-chan node.Event, peer string) error {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("event subscription ended")
			}
			if ev.Kind == node.LinkDown && ev.Peer == peer {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("link to %s never went down: %w", peer, ctx.Err())
		}
	}
}

// waitRoute polls until n has a reachable route to peer that satisfies ok.
func waitRoute(ctx context.Context, n *node.Node, peer string, ok func(node.PeerInfo) bool) (node.PeerInfo, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		for _, p := range n.Peers() {
			if p.Name == peer && p.Reachable && ok(p) {
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return node.PeerInfo{}, fmt.Errorf("%s has no suitable route to %s: %w", n.Name(), peer, ctx.Err())
		case <-t.C:
		}
	}
}

func demoRouteRows(peers []node.PeerInfo) [][]string {
	var rows [][]string
	for _, r := range routeRows(peers) {
		rows = append(rows, []string{r[0], r[1], r[2], r[3], r[5]})
	}
	return rows
}
