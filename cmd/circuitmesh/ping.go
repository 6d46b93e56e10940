package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

func pingCommand() *cli.Command {
	return &cli.Command{
		Name:      "ping",
		Usage:     "time round trips to a peer's echo service over fresh circuits",
		ArgsUsage: "PEER",
		Description: `Each ping opens a circuit to the peer's built-in echo service, records the
nodes it crossed and times one echo. "open" is the time to open the circuit
(one round trip), "rtt" the echo over the open circuit. Like ping(8), it
sends --count pings, prints a line per reply or failure and a summary (also
when Ctrl-C stops it early), and exits 1 when no reply came back. With
--json it prints one JSON object per line: {"type":"reply",...} or
{"type":"error",...} per ping, then {"type":"summary",...}.

Example:
   circuitmesh ping d -c 3`,
		Flags: daemonFlags(
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Usage: "send `N` pings, then print the summary", Value: 4},
			&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Usage: "wait `DURATION` between pings", Value: time.Second},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per line (NDJSON) instead of text"},
		),
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, "PEER"); err != nil {
				return err
			}
			if c.Int("count") < 1 {
				return usagef("--count must be at least 1")
			}
			if c.Duration("interval") < 0 {
				return usagef("--interval must not be negative")
			}
			if err := identity.ValidateName(c.Args().First()); err != nil {
				return usagef("peer %q: %v", c.Args().First(), err)
			}
			cl, err := clientFor(c)
			if err != nil {
				return err
			}
			return pingLoop(c, cl, c.Args().First())
		},
	}
}

// pingReply is one line of `ping --json`.
type pingReply struct {
	Type   string   `json:"type"` // "reply" or "error"
	Seq    int      `json:"seq"`
	Peer   string   `json:"peer"`
	OpenNS int64    `json:"open_ns,omitempty"`
	RTTNS  int64    `json:"rtt_ns,omitempty"`
	Path   []string `json:"path,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// pingSummary is the last line of `ping --json`.
type pingSummary struct {
	Type     string  `json:"type"` // "summary"
	Peer     string  `json:"peer"`
	Sent     int     `json:"sent"`
	Replies  int     `json:"replies"`
	LossPct  float64 `json:"loss_percent"`
	RTTMinNS int64   `json:"rtt_min_ns,omitempty"`
	RTTAvgNS int64   `json:"rtt_avg_ns,omitempty"`
	RTTMaxNS int64   `json:"rtt_max_ns,omitempty"`
}

// pingLoop sends the pings and prints the summary. Like ping(8), an
// interrupt (Ctrl-C) ends the pings and still prints the summary; a ping
// it cut short counts neither as sent nor as lost.
func pingLoop(c *cli.Context, cl *admin.Client, peer string) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	w, asJSON := c.App.Writer, c.Bool("json")
	enc := json.NewEncoder(w)
	var got []time.Duration
	sent := 0
	count := c.Int("count")
loop:
	for sent < count {
		if sent > 0 {
			select {
			case <-time.After(c.Duration("interval")):
			case <-ctx.Done():
				break loop
			}
		}
		sent++
		var p admin.Ping
		err := cl.Get(ctx, admin.PathPing, url.Values{"peer": {peer}}, &p)
		switch {
		case err != nil && ctx.Err() != nil:
			sent--
			break loop
		case err != nil && asJSON:
			enc.Encode(pingReply{Type: "error", Seq: sent, Peer: peer, Error: err.Error()})
		case err != nil:
			fmt.Fprintf(w, "no reply from %s: seq=%d: %s\n", peer, sent, termSafe(err.Error()))
		case asJSON:
			got = append(got, time.Duration(p.RTTNS))
			enc.Encode(pingReply{Type: "reply", Seq: sent, Peer: peer, OpenNS: p.OpenNS, RTTNS: p.RTTNS, Path: p.Path})
		default:
			got = append(got, time.Duration(p.RTTNS))
			fmt.Fprintf(w, "pong from %s via %s: seq=%d open %s, rtt %s\n", peer, fmtPath(p.Path), sent,
				fmtDuration(time.Duration(p.OpenNS)), fmtDuration(time.Duration(p.RTTNS)))
		}
	}
	s := summarize(peer, sent, got)
	if asJSON {
		enc.Encode(s)
	} else {
		printPingSummary(w, s)
	}
	if len(got) == 0 {
		return errReported
	}
	return nil
}

func summarize(peer string, sent int, rtts []time.Duration) pingSummary {
	s := pingSummary{Type: "summary", Peer: peer, Sent: sent, Replies: len(rtts)}
	if sent > 0 {
		s.LossPct = 100 * float64(sent-len(rtts)) / float64(sent)
	}
	if len(rtts) == 0 {
		return s
	}
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, v := range rtts {
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	s.RTTMinNS, s.RTTAvgNS, s.RTTMaxNS = int64(lo), int64(sum)/int64(len(rtts)), int64(hi)
	return s
}

func printPingSummary(w io.Writer, s pingSummary) {
	fmt.Fprintf(w, "--- %s ping statistics ---\n%d sent, %d replies, %.0f%% loss", s.Peer, s.Sent, s.Replies, s.LossPct)
	if s.Replies > 0 {
		fmt.Fprintf(w, ", rtt min/avg/max = %s/%s/%s", fmtDuration(time.Duration(s.RTTMinNS)),
			fmtDuration(time.Duration(s.RTTAvgNS)), fmtDuration(time.Duration(s.RTTMaxNS)))
	}
	fmt.Fprintln(w)
}
