package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/node"
)

// clientFor finds the daemon from --admin / --data-dir (and --config).
func clientFor(c *cli.Context) (*admin.Client, error) {
	if err := applyConfig(c, false); err != nil {
		return nil, err
	}
	return admin.NewClient(adminPath(c)), nil
}

// inspectCommand is a read-only command: fetch path, print JSON or render.
func inspectCommand[T any](name, usage, example, path string, render func(c *cli.Context, v T) error) *cli.Command {
	return &cli.Command{
		Name:        name,
		Usage:       usage,
		Description: "Example:\n   " + example,
		Flags:       daemonFlags(jsonFlag()),
		Action: func(c *cli.Context) error {
			if err := exactArgs(c); err != nil {
				return err
			}
			cl, err := clientFor(c)
			if err != nil {
				return err
			}
			var v T
			if err := cl.Get(c.Context, path, nil, &v); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, v)
			}
			return render(c, v)
		},
	}
}

func statusCommand() *cli.Command {
	return inspectCommand("status", "summarise the local node", "circuitmesh status --data-dir /var/lib/circuitmesh",
		admin.PathStatus, func(c *cli.Context, s node.Status) error {
			services := strings.Join(s.Services, ", ")
			if services == "" {
				services = "-"
			}
			kv := [][2]string{
				{"Node", s.Name},
				{"Mesh", s.Mesh},
				{"Role", s.Role},
				{"State", s.State},
				{"Address", s.Address},
				{"Up", fmtAge(s.Started, time.Now())},
				{"Links", strconv.Itoa(s.Links)},
				{"Reachable peers", strconv.Itoa(s.Reachable)},
				{"Circuits", fmt.Sprintf("%d (%d relayed)", s.Circuits, s.Relayed)},
				{"Services", services},
			}
			if s.GossipAddr != "" {
				kv = append(kv, [2]string{"Gossip", s.GossipAddr})
			}
			if s.Insecure {
				kv = append(kv, [2]string{"Security", "INSECURE (development identity, any peer accepted)"})
			}
			return printKV(c.App.Writer, kv)
		})
}

func peersCommand() *cli.Command {
	return inspectCommand("peers", "list the nodes known to routing", "circuitmesh peers --json",
		admin.PathPeers, func(c *cli.Context, peers []node.PeerInfo) error {
			return printTable(c.App.Writer, []string{"PEER", "REACHABLE", "VIA", "COST", "HOPS"}, peerRows(peers))
		})
}

func peerRows(peers []node.PeerInfo) [][]string {
	rows := make([][]string, 0, len(peers))
	for _, p := range peers {
		cost, hops := "", ""
		if p.Reachable {
			cost, hops = strconv.FormatUint(uint64(p.Cost), 10), strconv.Itoa(p.Hops)
		}
		rows = append(rows, []string{p.Name, yesNo(p.Reachable), p.NextHop, cost, hops})
	}
	return rows
}

func linksCommand() *cli.Command {
	return inspectCommand("links", "list the live links to neighbours", "circuitmesh links",
		admin.PathLinks, func(c *cli.Context, links []node.LinkInfo) error {
			return printTable(c.App.Writer,
				[]string{"PEER", "ADDRESS", "DIR", "RTT", "LOSS", "COST", "STREAMS", "AGE"}, linkRows(links, time.Now()))
		})
}

func linkRows(links []node.LinkInfo, now time.Time) [][]string {
	rows := make([][]string, 0, len(links))
	for _, l := range links {
		dir := "in"
		if l.Outbound {
			dir = "out"
		}
		cost := strconv.FormatUint(uint64(l.Cost), 10)
		if l.Pinned {
			cost += " (pinned)"
		}
		rows = append(rows, []string{l.Peer, l.Address, dir, fmtDuration(l.RTT),
			strconv.FormatFloat(100*l.Loss, 'f', 1, 64) + "%", cost, strconv.Itoa(l.Streams), fmtAge(l.Since, now)})
	}
	return rows
}

func routesCommand() *cli.Command {
	return inspectCommand("routes", "show the routing table: next hop and alternates per destination", "circuitmesh routes",
		admin.PathPeers, func(c *cli.Context, peers []node.PeerInfo) error {
			return printTable(c.App.Writer, []string{"DESTINATION", "NEXT HOP", "COST", "HOPS", "SEQNO", "ALTERNATES"}, routeRows(peers))
		})
}

func routeRows(peers []node.PeerInfo) [][]string {
	var rows [][]string
	for _, p := range peers {
		if !p.Reachable {
			continue
		}
		rows = append(rows, []string{p.Name, p.NextHop, strconv.FormatUint(uint64(p.Cost), 10),
			strconv.Itoa(p.Hops), strconv.Itoa(int(p.Seqno)), strings.Join(p.Alternates, ",")})
	}
	return rows
}

func servicesCommand() *cli.Command {
	return inspectCommand("services", "list published services and TCP forwards", "circuitmesh services",
		admin.PathServices, func(c *cli.Context, s admin.Services) error {
			w := c.App.Writer
			if err := printTable(w, []string{"SERVICE", "BACKEND"}, serviceRows(s)); err != nil {
				return err
			}
			if len(s.Forwards) == 0 {
				return nil
			}
			fmt.Fprintln(w)
			rows := make([][]string, 0, len(s.Forwards))
			for _, f := range s.Forwards {
				rows = append(rows, []string{f.Listen, f.Peer + "/" + f.Service})
			}
			return printTable(w, []string{"FORWARD", "TO"}, rows)
		})
}

func serviceRows(s admin.Services) [][]string {
	targets := map[string]string{}
	for _, e := range s.Exposed {
		targets[e.Service] = "tcp " + e.Target
	}
	rows := make([][]string, 0, len(s.Services))
	for _, name := range s.Services {
		b, ok := targets[name]
		if !ok {
			b = "in-process"
			if name == node.EchoService {
				b = "built-in echo"
			}
		}
		rows = append(rows, []string{name, b})
	}
	return rows
}
