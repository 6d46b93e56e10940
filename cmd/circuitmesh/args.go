package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves the flags of the named command in front of its
// positional arguments, so that `cert issue NAME --ca-dir DIR` works like
// `cert issue --ca-dir DIR NAME` (the flag parser stops at the first
// positional argument otherwise). "--" ends the flags.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds := app.Commands
	var cmd *cli.Command
	i := 1
	for i < len(args) {
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		out = append(out, args[i])
		i++
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	out = append(out, flags...)
	if len(positional) > 0 {
		out = append(out, "--")
		out = append(out, positional...)
	}
	return out
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// flagBeforeCommand refuses a flag of a command given before the command
// (`circuitmesh --data-dir DIR peers`) with the command line that works:
// circuitmesh itself has no such flag, and urfave/cli's "flag provided but
// not defined" pointed at `circuitmesh --help`, which does not list it.
func flagBeforeCommand(app *cli.App, args []string) error {
	at := 1
	for at < len(args) && findCommand(app.Commands, args[at]) == nil {
		at++
	}
	if at == 1 || at == len(args) {
		return nil
	}
	cmd, end := findCommand(app.Commands, args[at]), at+1
	for end < len(args) {
		sub := findCommand(cmd.Subcommands, args[end])
		if sub == nil {
			break
		}
		cmd, end = sub, end+1
	}
	for _, a := range args[1:at] {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || hasFlag(app.Flags, name) || !hasFlag(cmd.Flags, name) {
			continue
		}
		fixed := append(append(append([]string{"circuitmesh"}, args[at:end]...), args[1:at]...), args[end:]...)
		return usagef("--%s is a flag of `circuitmesh %s` and goes after it: %s",
			name, strings.Join(args[at:end], " "), strings.Join(fixed, " "))
	}
	return nil
}

func hasFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}
