package main

import (
	"fmt"
	"net/url"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
)

func pingCommand() *cli.Command {
	return &cli.Command{
		Name:      "ping",
		Usage:     "time round trips to a peer's echo service over fresh circuits",
		ArgsUsage: "PEER",
		Description: `Each ping opens a circuit to the peer's built-in echo service, records the
nodes it crossed and times one echo. "open" is the time to open the circuit
(one round trip), "rtt" the echo over the open circuit.

Example:
   circuitmesh ping d -c 3`,
		Flags: daemonFlags(
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "stop after `N` replies", Value: 4},
			&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Usage: "wait between pings", Value: time.Second},
			jsonFlag(),
		),
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, "PEER"); err != nil {
				return err
			}
			if c.Int("count") < 1 {
				return usagef("--count must be at least 1")
			}
			cl, err := clientFor(c)
			if err != nil {
				return err
			}
			return pingLoop(c, cl, c.Args().First())
		},
	}
}

func pingLoop(c *cli.Context, cl *admin.Client, peer string) error {
	w := c.App.Writer
	var got []time.Duration
	var lastErr error
	count := c.Int("count")
	for i := 0; i < count; i++ {
		if i > 0 {
			select {
			case <-time.After(c.Duration("interval")):
			case <-c.Context.Done():
				return c.Context.Err()
			}
		}
		var p admin.Ping
		err := cl.Get(c.Context, admin.PathPing, url.Values{"peer": {peer}}, &p)
		switch {
		case err != nil:
			lastErr = err
			if c.Bool("json") {
				printJSON(w, map[string]string{"peer": peer, "error": err.Error()})
			} else {
				fmt.Fprintf(w, "no reply from %s: %v\n", peer, err)
			}
		case c.Bool("json"):
			got = append(got, time.Duration(p.RTTNS))
			printJSON(w, p)
		default:
			got = append(got, time.Duration(p.RTTNS))
			fmt.Fprintf(w, "pong from %s via %s: open %s, rtt %s\n", peer, fmtPath(p.Path),
				fmtDuration(time.Duration(p.OpenNS)), fmtDuration(time.Duration(p.RTTNS)))
		}
	}
	if !c.Bool("json") {
		fmt.Fprintf(w, "%d sent, %d replies%s\n", count, len(got), rttSummary(got))
	}
	if len(got) == 0 {
		return fmt.Errorf("no reply from %s: %w", peer, lastErr)
	}
	return nil
}

// rttSummary is ", rtt min/avg/max = a/b/c" or "" without replies.
func rttSummary(d []time.Duration) string {
	if len(d) == 0 {
		return ""
	}
	lo, hi, sum := d[0], d[0], time.Duration(0)
	for _, v := range d {
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	return fmt.Sprintf(", rtt min/avg/max = %s/%s/%s", fmtDuration(lo), fmtDuration(sum/time.Duration(len(d))), fmtDuration(hi))
}
