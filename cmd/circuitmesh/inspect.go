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

// inspectCommand is a read-only command: fetch path, then print it as JSON
// (toJSON shapes it; nil prints it as fetched) or render it as a table.
// help is the description shown by --help, ending with an example.
func inspectCommand[T any](name, usage, help, path string, toJSON func(T) any, render func(c *cli.Context, v T) error) *cli.Command {
	return &cli.Command{
		Name:        name,
		Usage:       usage,
		Description: help,
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
				if toJSON != nil {
					return printJSON(c.App.Writer, toJSON(v))
				}
				return printJSON(c.App.Writer, v)
			}
			return render(c, v)
		},
	}
}

func statusCommand() *cli.Command {
	return inspectCommand("status", "summarise the local node", `Shows the node's name, mesh, role, addresses, uptime, live links, reachable
peers, open circuits and services. --json prints one object.

Example:
   circuitmesh status --data-dir /var/lib/circuitmesh`,
		admin.PathStatus, nil, func(c *cli.Context, s node.Status) error {
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
			if s.E2E == "off" {
				kv = append(kv, [2]string{"End-to-end", "OFF (circuits in the clear: relays can read and change them)"})
			} else {
				kv = append(kv, [2]string{"End-to-end", s.E2E})
			}
			return printKV(c.App.Writer, kv)
		})
}

func peersCommand() *cli.Command {
	return inspectCommand("peers", "list the nodes known to routing", `Lists every node routing has heard of, whether it is reachable, the next
hop, the path cost and the hop count. --json prints an array of objects.

Example:
   circuitmesh peers --json`,
		admin.PathPeers, nil, func(c *cli.Context, peers []node.PeerInfo) error {
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
	return inspectCommand("links", "list the live links to neighbours", `Lists the node's live links: peer, address, who dialled, smoothed RTT, loss,
the cost routing uses (marked "pinned" when set by --link-cost or link-cost),
open streams and age. --json prints an array of objects.

Example:
   circuitmesh links`,
		admin.PathLinks, nil, func(c *cli.Context, links []node.LinkInfo) error {
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
		if l.Draining {
			cost += " (draining)"
		}
		rows = append(rows, []string{l.Peer, l.Address, dir, fmtDuration(l.RTT),
			strconv.FormatFloat(100*l.Loss, 'f', 1, 64) + "%", cost, strconv.Itoa(l.Streams), fmtAge(l.Since, now)})
	}
	return rows
}

func routesCommand() *cli.Command {
	return inspectCommand("routes", "show the routing table: next hop and alternates per destination", `Shows, for each reachable destination, the selected next hop, cost, hop
count, the origin's sequence number and the feasible alternates a circuit
falls back to. --json prints an array of objects.

Example:
   circuitmesh routes`,
		admin.PathPeers, nil, func(c *cli.Context, peers []node.PeerInfo) error {
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
	return inspectCommand("services", "list the services this node publishes", `Lists the services published on this node and what backs each: a local TCP
address (expose), the built-in echo, or a listener in the process. --json
prints an array of objects: {"service", "backend", "target"}.

Example:
   circuitmesh services`,
		admin.PathServices, func(s admin.Services) any { return serviceList(s) },
		func(c *cli.Context, s admin.Services) error {
			rows := make([][]string, 0, len(s.Services))
			for _, e := range serviceList(s) {
				b := e.Backend
				if e.Target != "" {
					b += " " + e.Target
				}
				rows = append(rows, []string{e.Service, b})
			}
			return printTable(c.App.Writer, []string{"SERVICE", "BACKEND"}, rows)
		})
}

func forwardsCommand() *cli.Command {
	return inspectCommand("forwards", "list the TCP forwards of this node", `Lists the local TCP listeners that tunnel to mesh services (forward or
--forward). --json prints an array of objects: {"listen", "peer", "service"}.

Example:
   circuitmesh forwards`,
		admin.PathServices, func(s admin.Services) any { return s.Forwards },
		func(c *cli.Context, s admin.Services) error {
			rows := make([][]string, 0, len(s.Forwards))
			for _, f := range s.Forwards {
				rows = append(rows, []string{f.Listen, f.Peer + "/" + f.Service})
			}
			return printTable(c.App.Writer, []string{"LISTEN", "TO"}, rows)
		})
}

// serviceEntry is one service in `services`.
type serviceEntry struct {
	Service string `json:"service"`
	Backend string `json:"backend"` // "tcp", "echo" or "in-process"
	Target  string `json:"target,omitempty"`
}

func serviceList(s admin.Services) []serviceEntry {
	targets := map[string]string{}
	for _, e := range s.Exposed {
		targets[e.Service] = e.Target
	}
	out := make([]serviceEntry, 0, len(s.Services))
	for _, name := range s.Services {
		e := serviceEntry{Service: name, Backend: "in-process"}
		switch t, ok := targets[name]; {
		case ok:
			e.Backend, e.Target = "tcp", t
		case name == node.EchoService:
			e.Backend = "echo"
		case name == node.InfoService:
			e.Backend = "info"
		}
		out = append(out, e)
	}
	return out
}
