package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/meshgraph"
	"github.com/circuitmesh/circuitmesh/node"
)

func graphCommand() *cli.Command {
	return &cli.Command{
		Name:  "graph",
		Usage: "print the mesh topology as DOT, JSON, Mermaid or SVG",
		Description: `The daemon asks the built-in info service of every node it can reach
(concurrently, --timeout each) for its links, their quality, its role,
version and services, and prints the graph. Nodes that do not answer are
listed as unreachable (and named on stderr); the graph is then partial.
SVG is drawn by circuitmesh itself (no Graphviz needed); --path PEER
highlights the path a ping to PEER takes.

Example:
   circuitmesh graph | dot -Tpng > mesh.png
   circuitmesh graph --format svg --path d > mesh.svg`,
		Flags: daemonFlags(
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Usage: "`FORMAT`: dot, json, mermaid or svg", Value: "dot"},
			&cli.DurationFlag{Name: "timeout", Usage: "wait at most `DURATION` for each node's answer", Value: 3 * time.Second},
			&cli.StringFlag{Name: "path", Usage: "with --format svg, highlight the path of a ping to `PEER`"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("graph takes no arguments, got %q", c.Args().First())
			}
			format := c.String("format")
			switch format {
			case "dot", "json", "mermaid", "svg":
			default:
				return usagef("--format %q: want dot, json, mermaid or svg", format)
			}
			if c.String("path") != "" && format != "svg" {
				return usagef("--path needs --format svg")
			}
			if d := c.Duration("timeout"); d <= 0 || d > 15*time.Second {
				return usagef("--timeout %v: want a duration from 1ms to 15s", d)
			}
			cl, err := clientFor(c)
			if err != nil {
				return err
			}
			var g node.Graph
			if err := cl.Get(c.Context, admin.PathGraph, url.Values{"timeout": {c.Duration("timeout").String()}}, &g); err != nil {
				return err
			}
			for _, u := range g.Unreachable {
				fmt.Fprintf(c.App.ErrWriter, "circuitmesh: %s did not answer: %s\n", termSafe(u.Name), termSafe(u.Error))
			}
			w := c.App.Writer
			switch format {
			case "json":
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(g)
			case "mermaid":
				return meshgraph.Mermaid(w, g)
			case "svg":
				var opt meshgraph.SVGOptions
				if peer := c.String("path"); peer != "" {
					var p admin.Ping
					if err := cl.Get(c.Context, admin.PathPing, url.Values{"peer": {peer}}, &p); err != nil {
						return fmt.Errorf("--path %s: %w", peer, err)
					}
					opt.Path = p.Path
				}
				return meshgraph.SVG(w, g, opt)
			}
			return meshgraph.DOT(w, g)
		},
	}
}
