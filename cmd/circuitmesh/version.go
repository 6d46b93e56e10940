package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/node"
)

func init() {
	// --version only: -v is too easily meant as "verbose".
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit", DisableDefaultText: true}
	cli.VersionPrinter = func(c *cli.Context) { fmt.Fprintln(c.App.Writer, versionLine()) }
}

// buildVersion is the module version and commit the binary was built from.
func buildVersion() string {
	b := node.Build()
	if b.Commit == "" {
		return b.Version
	}
	return b.Version + " " + b.Commit
}

func versionLine() string {
	return fmt.Sprintf("circuitmesh %s %s %s/%s", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, commit and Go version of this binary",
		Description: `The same as --version.

Example:
   circuitmesh version`,
		Action: func(c *cli.Context) error {
			if err := exactArgs(c); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, versionLine())
			return nil
		},
	}
}
