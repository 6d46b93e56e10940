package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/httpserve"
)

// controlCommand is a command that changes the running daemon.
// help is the description shown by --help, ending with an example.
func controlCommand(name, usage, args, help string, action func(c *cli.Context, cl *admin.Client) error) *cli.Command {
	return &cli.Command{
		Name:        name,
		Usage:       usage,
		ArgsUsage:   args,
		Description: help,
		Flags:       daemonFlags(),
		Action: func(c *cli.Context) error {
			cl, err := clientFor(c)
			if err != nil {
				return err
			}
			return action(c, cl)
		},
	}
}

func exposeCommand() *cli.Command {
	return controlCommand("expose", "publish a local TCP service as a mesh service", "NAME HOST:PORT",
		`Publishes the TCP service at HOST:PORT on the running daemon as the mesh
service NAME: every circuit to <this node>/NAME becomes a TCP connection
to HOST:PORT. NAME is 1 to 63 bytes of letters, digits, punctuation or
symbols other than ',', '#' and '*' (no spaces); HOST must resolve.

Example:
   circuitmesh expose web 127.0.0.1:8080   # peers reach it as <this node>/web`,
		func(c *cli.Context, cl *admin.Client) error {
			if err := exactArgs(c, "NAME", "HOST:PORT"); err != nil {
				return err
			}
			e, err := parseExpose(c.Args().Get(0), c.Args().Get(1))
			if err != nil {
				return usagef("expose: %v", err)
			}
			if err := cl.Post(c.Context, admin.PathExpose, admin.Expose{Service: e.service, Target: e.target}, nil); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "exposed %s as service %q\n", e.target, e.service)
			return nil
		})
}

func unexposeCommand() *cli.Command {
	return controlCommand("unexpose", "withdraw a service published with expose", "NAME",
		`Withdraws a service published with expose (or --expose); connections
already spliced to it are closed.

Example:
   circuitmesh unexpose web`,
		func(c *cli.Context, cl *admin.Client) error {
			if err := exactArgs(c, "NAME"); err != nil {
				return err
			}
			if err := cl.Delete(c.Context, admin.PathExpose, url.Values{"service": {c.Args().First()}}); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "withdrew service %q\n", c.Args().First())
			return nil
		})
}

func forwardCommand() *cli.Command {
	return controlCommand("forward", "tunnel a local TCP port to a mesh service", "LISTEN PEER/SERVICE",
		`Listens on the local TCP address LISTEN (a bare port means 127.0.0.1,
:PORT every interface; HOST must resolve) and tunnels every connection
over a fresh circuit to SERVICE on node PEER, opened as this node:
whoever reaches LISTEN uses SERVICE as this node.

Example:
   circuitmesh forward 127.0.0.1:8080 d/web && curl http://127.0.0.1:8080/`,
		func(c *cli.Context, cl *admin.Client) error {
			if err := exactArgs(c, "LISTEN", "PEER/SERVICE"); err != nil {
				return err
			}
			f, err := parseForward(c.Args().Get(0), c.Args().Get(1))
			if err != nil {
				return usagef("forward: %v", err)
			}
			if err := resolveForward("forward", f); err != nil {
				return err
			}
			var got admin.Forward
			if err := cl.Post(c.Context, admin.PathForward, admin.Forward{Listen: f.listen, Peer: f.peer, Service: f.service}, &got); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "forwarding %s to %s/%s\n", got.Listen, got.Peer, got.Service)
			if !httpserve.Loopback(got.Listen) {
				fmt.Fprintf(c.App.ErrWriter, "warning: %s is not on loopback: whoever reaches it uses %s/%s as this node\n", got.Listen, got.Peer, got.Service)
			}
			return nil
		})
}

func unforwardCommand() *cli.Command {
	return controlCommand("unforward", "stop a TCP forward", "LISTEN",
		`Stops the forward listening on LISTEN (as given to forward, or as bound)
and closes its connections.

Example:
   circuitmesh unforward 127.0.0.1:8080`,
		func(c *cli.Context, cl *admin.Client) error {
			if err := exactArgs(c, "LISTEN"); err != nil {
				return err
			}
			listen, err := normalizeListen(c.Args().First())
			if err != nil {
				return usagef("%v", err)
			}
			if err := cl.Delete(c.Context, admin.PathForward, url.Values{"listen": {listen}}); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "stopped forwarding %s\n", listen)
			return nil
		})
}

func linkCostCommand() *cli.Command {
	return controlCommand("link-cost", "pin the cost of the link to a neighbour, or return it to the measured cost", "PEER COST|auto",
		`Routing uses the pinned cost for the link to PEER (now, and for later links
to it) instead of the measured one; "auto" returns to the measured cost.
A cost is in units of 10µs of round trip; a path costs the sum of its link
costs. "circuitmesh links" marks pinned costs. At start-up, --link-cost
PEER=COST does the same. While PEER drains (it is shutting down), its link
costs the highest whatever is pinned, so that routes move around it.

Example:
   circuitmesh link-cost bravo 500   # routes avoid the link to bravo when a cheaper path exists
   circuitmesh link-cost bravo auto  # back to the measured cost`,
		func(c *cli.Context, cl *admin.Client) error {
			if err := exactArgs(c, "PEER", "COST"); err != nil {
				return err
			}
			peer := c.Args().Get(0)
			cost, err := parseCost(c.Args().Get(1))
			if err != nil {
				return usagef("link-cost %s: %v", peer, err)
			}
			if err := cl.Post(c.Context, admin.PathLinkCost, admin.LinkCost{Peer: peer, Cost: cost}, nil); err != nil {
				return err
			}
			if cost == 0 {
				fmt.Fprintf(c.App.Writer, "link to %s uses its measured cost\n", peer)
			} else {
				fmt.Fprintf(c.App.Writer, "link to %s pinned at cost %d\n", peer, cost)
			}
			return nil
		})
}

func reloadCommand() *cli.Command {
	return controlCommand("reload", "reload the node's certificate, key and CA files and its policy (as SIGHUP does)", "",
		`Rereads the node's certificate, key and CA files and switches to them
without dropping links or circuits: new links and end-to-end handshakes
use the new certificate, and the node announces a new sequence number
signed with it. An expired certificate, or one for another name or mesh,
is refused and the current identity kept. SIGHUP does the same.
The authorization policy (--policy-file, or the config file's policy
lines) is reread too: circuits it still allows stay open, those it no
longer allows are reset. A reload is all or nothing: when the identity
files or the policy are refused (a policy that does not parse, a policy
file others may change), neither changes.

Example:
   circuitmesh cert issue b --ca-dir ./ca --out ./b --force && circuitmesh reload --data-dir ./b`,
		func(c *cli.Context, cl *admin.Client) error {
			if c.NArg() > 0 {
				return usagef("reload takes no arguments, got %q", c.Args().First())
			}
			var res admin.ReloadResult
			if err := cl.Post(c.Context, admin.PathReload, nil, &res); err != nil {
				return err
			}
			if !res.CertNotAfter.IsZero() {
				fmt.Fprintf(c.App.Writer, "reloaded the identity of %s; certificate valid until %s\n",
					res.Name, res.CertNotAfter.UTC().Format(time.RFC3339))
			}
			if p := res.Policy; p != nil {
				fmt.Fprintf(c.App.Writer, "applied the policy of %s: %d rules; %d open circuits it no longer allows were closed\n",
					p.Source, p.Rules, p.CircuitsClosed)
			}
			return nil
		})
}
