package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

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
step failed or the script does not parse (FILE:LINE: message) or is larger
than 4 MiB, 2 for a bad command line. Time is real unless --virtual is given: then the scenario runs
on a fake clock that jumps whenever every node waits (testing/synctest), so
"wait 60s" takes the computing it involves, not a minute, and the report
gives virtual times with the wall times beside them. Above 300 nodes a soft
memory limit is set from the node count (1.25 GiB at 1000 nodes, 5.25 GiB
when they run gossip) unless
GOMEMLIMIT is set; GOMEMLIMIT=off runs without one.

Examples:
   circuitmesh simulate
   circuitmesh simulate --backend mem simulate/testdata/random-100.sim
   circuitmesh simulate simulate/testdata/discover-regions.sim   # nodes that link by gossip
   circuitmesh simulate --json ring.sim > report.json
   circuitmesh simulate --virtual --backend mem simulate/testdata/random-100.sim`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "backend", Usage: "`BACKEND` to run links on: quic (real QUIC over a simulated network with latency and loss) or mem (in-memory links, for hundreds of nodes)", Value: string(simulate.BackendQUIC)},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON instead of a table"},
			&cli.BoolFlag{Name: "virtual", Usage: "run in virtual time: waits and timeouts take no real time, figures are the protocols' own"},
			&cli.BoolFlag{Name: "progress", Usage: "print each step on stderr as it finishes"},
			&cli.Uint64Flag{Name: "seed", Usage: "`SEED` (1 or more) of packet loss, of discover order=random and of workload pairs without seed= (random graphs and regions take seed= in the script)", Value: 1},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the run to `FILE` (also when interrupted)"},
			&cli.StringFlag{Name: "memprofile", Usage: "write an allocation profile of the run to `FILE` (also when interrupted; SIGUSR1 writes the profile of the moment to FILE.1, FILE.2, …)"},
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
			if c.Uint64("seed") == 0 {
				// simulate.Config takes 0 for its default, 1: refuse it
				// rather than run seed 1 under another name.
				return usagef("--seed 0: want 1 or more (0 would run as seed 1)")
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
				b, err := readScenario(c.Args().First())
				if err != nil {
					return err
				}
				name, src = filepath.Base(c.Args().First()), string(b)
			}
			script, err := simulate.Parse(name, src)
			if err != nil {
				return err
			}
			setSimulateMemoryLimit(script.Nodes(), script.GossipNodes())
			var progress io.Writer
			if c.Bool("progress") {
				progress = c.App.ErrWriter
			}
			prof, err := startSimProfiles(c.String("cpuprofile"), c.String("memprofile"))
			if err != nil {
				return err
			}
			var rep *simulate.Report
			if c.Bool("virtual") {
				rep, err = simulate.RunVirtual(script, cfg, progress)
			} else {
				rep, err = simulate.Run(c.Context, script, cfg, progress)
			}
			if perr := prof.stop(); perr != nil && err == nil {
				err = perr
			}
			if rep == nil {
				return err
			}
			runErr := err // the report is printed all the same
			if c.Bool("json") {
				err = rep.WriteJSON(c.App.Writer)
			} else {
				err = rep.WriteTable(c.App.Writer)
			}
			if err != nil {
				return err
			}
			if runErr != nil {
				return runErr
			}
			if !rep.OK() {
				return fmt.Errorf("scenario %s failed: %d step(s) failed, %d expectation(s) passed", name, rep.Failed, rep.Passed)
			}
			return nil
		},
	}
}

// maxScenarioFile bounds the scenario file simulate reads: scenarios are
// text of a few thousand lines at most (the largest in simulate/testdata
// is under 1 KiB), so 4 MiB is far beyond any, and a file that never ends
// (/dev/zero, a stream) or a huge one is refused at once instead of read
// into memory without limit.
const maxScenarioFile = 4 << 20

// readScenario reads the scenario file name, refusing one larger than
// maxScenarioFile.
func readScenario(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read the scenario: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxScenarioFile+1))
	if err != nil {
		return nil, fmt.Errorf("read the scenario %s: %w", name, err)
	}
	if len(b) > maxScenarioFile {
		return nil, fmt.Errorf("scenario %s is larger than %d MiB, the most simulate reads (is it the scenario script?)", name, maxScenarioFile>>20)
	}
	return b, nil
}

// setSimulateMemoryLimit sets the soft memory limit of a scenario of that
// many nodes, gossip of them with discovery (simulate.MemoryLimitGossip) unless GOMEMLIMIT is set (off: none).
func setSimulateMemoryLimit(nodes, gossip int) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	if limit := simulate.MemoryLimitGossip(nodes, gossip); limit > 0 {
		if m := machineMemory(); m > 0 {
			// A soft limit beyond the memory there is never binds: the heap
			// would swap or be killed first.
			limit = min(limit, m/10*9)
		}
		debug.SetMemoryLimit(limit)
	}
}

// machineMemory is the memory this process may use: the smaller of the
// machine's (/proc/meminfo MemTotal) and its cgroup's limit
// (/sys/fs/cgroup/memory.max), or 0 when neither can be read.
func machineMemory() int64 {
	var m int64
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			m = kib << 10
		}
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		var c int64
		if _, err := fmt.Sscanf(string(b), "%d", &c); err == nil && c > 0 && (m == 0 || c < m) {
			m = c
		}
	}
	return m
}
