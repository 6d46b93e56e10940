// Command circuitmesh runs a circuitmesh node (the daemon) and inspects and
// controls a running one (the CLI). See `circuitmesh --help` and README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/earlyhup"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status: 0 on
// success, 2 for usage errors (the daemon's refusal of an argument
// included) and 1 for everything else. Errors are
// printed as one line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := refuseSecretArgs(args)
	if err == nil {
		err = flagBeforeCommand(app, args)
	}
	if err == nil {
		ctx := context.WithValue(context.Background(), argsKey{}, args)
		err = app.RunContext(ctx, interspersed(app, args))
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, errReported) {
		return 1
	}
	fmt.Fprintln(stderr, "circuitmesh: "+termSafe(err.Error()))
	// The daemon checks some arguments itself (names, groups): its
	// refusal of them is a bad command line too.
	var ue *usageError
	if errors.As(err, &ue) || errors.Is(err, admin.ErrBadRequest) {
		return 2
	}
	return 1
}

// argsKey keys the command line (os.Args) in the context of a command,
// for `run` to check its config file again on reload as it did at start.
type argsKey struct{}

// errReported ends a command that has already told the user what went
// wrong on its own output (ping's summary): exit status 1, nothing more.
var errReported = errors.New("failure already reported")

// usageError is a bad command line; it exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "circuitmesh",
		Usage: "a node-to-node circuit routing mesh over QUIC",
		Description: `Start a node on each host with "circuitmesh run", then inspect and use the
mesh with the other commands, which talk to the local daemon's admin socket.

Try it without any setup:   circuitmesh demo`,
		Version:        buildVersion(),
		Reader:         stdin,
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {}, // run prints and exits
		Commands: []*cli.Command{
			runCommand(),
			demoCommand(),
			simulateCommand(),
			initCommand(),
			caCommand(),
			certCommand(),
			statusCommand(),
			peersCommand(),
			linksCommand(),
			routesCommand(),
			servicesCommand(),
			forwardsCommand(),
			exposeCommand(),
			unexposeCommand(),
			forwardCommand(),
			unforwardCommand(),
			dialCommand(),
			pingCommand(),
			graphCommand(),
			linkCostCommand(),
			reloadCommand(),
			policyCommand(),
			keysCommand(),
			versionCommand(),
		},
		OnUsageError: onUsageError,
		Before: func(c *cli.Context) error {
			if c.Args().First() != "run" {
				earlyhup.Release() // only the daemon reloads on SIGHUP
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q (see `circuitmesh --help`)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	prepareCommands(app.Commands)
	return app
}

// prepareCommands gives every command the same usage-error behaviour: one
// line and exit status 2 for bad flags, missing required flags and wrong
// arguments, and no "help" subcommand on leaf commands, so that
// `cert issue h` issues a certificate for h instead of printing help.
func prepareCommands(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		if len(c.Subcommands) == 0 {
			c.HideHelpCommand = true
			requireFlags(c)
		}
		prepareCommands(c.Subcommands)
	}
}

// requireFlags replaces urfave/cli's own required-flag check (which prints
// the whole help and exits 1) by a usage error naming the missing flags.
func requireFlags(c *cli.Command) {
	var required []string
	for _, f := range c.Flags {
		switch f := f.(type) {
		case *cli.StringFlag:
			if f.Required {
				f.Required, f.Usage = false, f.Usage+" (required)"
				required = append(required, f.Name)
			}
		case *cli.PathFlag:
			if f.Required {
				f.Required, f.Usage = false, f.Usage+" (required)"
				required = append(required, f.Name)
			}
		}
	}
	if len(required) == 0 || c.Action == nil {
		return
	}
	action := c.Action
	c.Action = func(ctx *cli.Context) error {
		var missing []string
		for _, name := range required {
			if !ctx.IsSet(name) {
				missing = append(missing, "--"+name)
			}
		}
		if len(missing) > 0 {
			return usagef("%s needs %s (see `%s --help`)", ctx.Command.HelpName, strings.Join(missing, " and "), ctx.Command.HelpName)
		}
		return action(ctx)
	}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	return usagef("%v (see `%s --help`)", err, c.Command.HelpName)
}

// exactArgs checks the number of positional arguments.
func exactArgs(c *cli.Context, names ...string) error {
	if c.NArg() != len(names) {
		return usagef("%s needs %d argument(s): %v, got %d (see `%s --help`)",
			c.Command.Name, len(names), names, c.NArg(), c.Command.HelpName)
	}
	return nil
}
