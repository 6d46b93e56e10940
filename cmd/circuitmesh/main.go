// Command circuitmesh runs a circuitmesh node (the daemon) and inspects and
// controls a running one (the CLI). See `circuitmesh --help` and README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status: 0 on
// success, 2 for usage errors and 1 for everything else. Errors are
// printed as one line on stderr.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := refuseSecretArgs(args)
	if err == nil {
		err = app.Run(interspersed(app, args))
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "circuitmesh: "+err.Error())
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

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
			exposeCommand(),
			unexposeCommand(),
			forwardCommand(),
			unforwardCommand(),
			dialCommand(),
			pingCommand(),
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q (see `circuitmesh --help`)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	setUsageErrors(app.Commands)
	return app
}

func setUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		setUsageErrors(c.Subcommands)
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
