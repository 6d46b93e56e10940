package main

import (
	"context"
	"io"
	"time"

	"github.com/urfave/cli/v2"
)

func dialCommand() *cli.Command {
	return &cli.Command{
		Name:      "dial",
		Usage:     "connect stdin and stdout to a mesh service (like nc)",
		ArgsUsage: "PEER SERVICE",
		Description: `Opens a circuit through the local daemon. End of stdin half-closes the
circuit; the command ends when the service closes its side. It exits 1
with the reason on stderr when the circuit is refused or ends in error
(reset on the path, link lost, service down behind the far node).

Example:
   echo hello | circuitmesh dial d echo
   printf 'GET / HTTP/1.0\r\n\r\n' | circuitmesh dial d web`,
		Flags: daemonFlags(),
		Action: func(c *cli.Context) error {
			if err := exactArgs(c, "PEER", "SERVICE"); err != nil {
				return err
			}
			cl, err := clientFor(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			circ, err := cl.Dial(ctx, c.Args().Get(0), c.Args().Get(1))
			cancel()
			if err != nil {
				return err
			}
			defer circ.Close()
			go func() {
				if _, err := io.Copy(circ, c.App.Reader); err != nil {
					circ.Close()
					return
				}
				circ.CloseWrite()
			}()
			_, err = io.Copy(c.App.Writer, circ)
			return err
		},
	}
}
