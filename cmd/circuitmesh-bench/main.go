// Command circuitmesh-bench measures circuitmesh against direct quic-go on
// loopback and writes bench-results.json.
//
// Without a role it runs the suite: it starts a line of nodes
// n0-n1-n2-n3-n4, a line x0-x1-x2 with end-to-end security off, a pair of
// plain quic-go endpoints and two naive relays (io.Copy over quic-go
// streams) in front of the receiver, each in its own process (this binary
// re-executed as "node", "quic" or "naive"; "spin" is the background load
// of the busy latency run), drives them over
// their stdin/stdout, and reports every figure as a ratio or difference
// against a baseline measured in the same run, in interleaved rounds:
//
//	circuitmesh-bench [-quick] [-out bench-results.json] [-profile-dir dir] [-only line|relay|throughput|latency|resume|reroute|scale] [-scale n]
//
// The roles can also be started by hand:
//
//	circuitmesh-bench node --name r1 --listen 127.0.0.1:0 --link 127.0.0.1:4242 [-cpuprofile f]
//	circuitmesh-bench quic --listen 127.0.0.1:0
//	circuitmesh-bench naive --listen 127.0.0.1:0 --next 127.0.0.1:4243
//
// A role writes one JSON line with its address, then answers one JSON
// request per line on stdin (see control.go) until stdin closes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "circuitmesh-bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "node":
			return nodeRole(args[1:])
		case "quic":
			return quicRole(args[1:])
		case "naive":
			return naiveRole(args[1:])
		case "spin":
			return spinRole(args[1:])
		}
	}
	fs := flag.NewFlagSet("circuitmesh-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "reduced suite (under two minutes)")
	out := fs.String("out", "bench-results.json", "where to write the JSON results")
	sizeMiB := fs.Int64("size", 0, "MiB per transfer (default 256, 48 with -quick)")
	rounds := fs.Int("rounds", 0, "interleaved throughput rounds (default 5, 3 with -quick)")
	profileDir := fs.String("profile-dir", "", "write CPU profiles (throughput, open+echo, round trips, held circuits) and execution traces (open+echo, round trips) of the roles here")
	verbose := fs.Bool("v", false, "show the role processes' logs")
	only := fs.String("only", "", `run one part: "line" (throughput, latency, memory), "relay" (the line's throughput and latency only), "throughput" (the line's throughput rounds only), "latency" (the line's open+echo and round trips, idle and busy, only), "resume" (the line's resumable/off pairs only), "reroute" or "scale"`)
	scale := fs.Int("scale", -1, "idle circuits the scale part holds through one relay (default 100000, 0 with -quick: not run)")
	o := fullOptions()
	tune := defaultTuning()
	tune.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *quick {
		o = quickOptions()
	}
	if *sizeMiB > 0 {
		o.Size = *sizeMiB << 20
	}
	if *rounds > 0 {
		o.Rounds = *rounds
	}
	if *scale >= 0 {
		o.Scale = *scale
	}
	o.Tune, o.ProfileDir, o.Progress, o.Only = tune, *profileDir, stderr, *only
	if *verbose {
		o.Log = stderr
	}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("profile dir: %w", err)
		}
	}
	res, err := runSuite(o)
	if err != nil {
		return err
	}
	res.printTable(stdout)
	return errors.Join(res.writeJSON(*out))
}

// defaultTuning is the configuration the suite runs circuits and
// baselines with unless flags override it.
func defaultTuning() tuning {
	return tuning{}
}
