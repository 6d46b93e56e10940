package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/simulate"
)

// simulateCommand runs a scenario script on an in-process cluster.
func simulateCommand() *cli.Command {
	return &cli.Command{
		Name:      "simulate",
		Usage:     "run a scenario on many real nodes in this process over a simulated network",
		ArgsUsage: "[SCRIPT]",
		Description: `Starts the nodes a scenario script names, links them, injects faults (cuts,
partitions, isolation, crashes and restarts, latency and loss), checks its
expectations and measures convergence, reroute, open time and throughput.
Without SCRIPT it runs the built-in diamond failover demo. The language is
described in docs/SIMULATE.md. The exit status is 1 when an expectation or
step failed. Time is real; to run a scenario in virtual time use
  go test ./simulate -run TestVirtualScript -v -args -sim.script=/abs/path.sim

Examples:
   circuitmesh simulate
   circuitmesh simulate --backend mem simulate/testdata/random-100.sim
   circuitmesh simulate simulate/testdata/discover-regions.sim   # nodes that link by gossip
   circuitmesh simulate --json ring.sim > report.json`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "backend", Usage: "`BACKEND` to run links on: quic (real QUIC over a simulated network with latency and loss) or mem (in-memory links, for hundreds of nodes)", Value: string(simulate.BackendQUIC)},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON instead of a table"},
			&cli.BoolFlag{Name: "progress", Usage: "print each step on stderr as it finishes"},
			&cli.Uint64Flag{Name: "seed", Usage: "`SEED` of packet loss and of discover order=random (random graphs and regions take seed= in the script)", Value: 1},
			&cli.StringFlag{Name: "log-level", Usage: "node log `LEVEL` on stderr (debug, info, warn, error; default: none)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usagef("simulate takes at most one SCRIPT, got %d arguments (see `%s --help`)", c.NArg(), c.Command.HelpName)
			}
			backend := simulate.Backend(c.String("backend"))
			if backend != simulate.BackendQUIC && backend != simulate.BackendMem {
				return usagef("--backend %q: want quic or mem", backend)
			}
			cfg := simulate.Config{Backend: backend, Seed: c.Uint64("seed")}
			if lvl := c.String("log-level"); lvl != "" {
				var level slog.Level
				if err := level.UnmarshalText([]byte(lvl)); err != nil {
					return usagef("--log-level %q: want debug, info, warn or error", lvl)
				}
				cfg.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
			}
			name, src := simulate.DefaultScriptName, simulate.DefaultScript
			if c.NArg() == 1 {
				b, err := os.ReadFile(c.Args().First())
				if err != nil {
					return fmt.Errorf("read the scenario: %w", err)
				}
				name, src = filepath.Base(c.Args().First()), string(b)
			}
			script, err := simulate.Parse(name, src)
			if err != nil {
				return err
			}
			var progress io.Writer
			if c.Bool("progress") {
				progress = c.App.ErrWriter
			}
			rep, err := simulate.Run(c.Context, script, cfg, progress)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				err = rep.WriteJSON(c.App.Writer)
			} else {
				err = rep.WriteTable(c.App.Writer)
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("scenario %s failed: %d step(s) failed, %d expectation(s) passed", name, rep.Failed, rep.Passed)
			}
			return nil
		},
	}
}
