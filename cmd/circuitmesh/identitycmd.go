package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

func forceFlag() cli.Flag {
	return &cli.BoolFlag{Name: "force", Usage: "replace existing files (existing keys are never overwritten without it)"}
}

func caCommand() *cli.Command {
	return &cli.Command{
		Name:  "ca",
		Usage: "manage the mesh certificate authority",
		Description: `Creates the CA that signs every node certificate of a mesh. Nodes accept
links and circuits only from nodes whose certificates it signed.

Example:
   circuitmesh ca init --dir ./ca --mesh prod`,
		Subcommands: []*cli.Command{{
			Name:  "init",
			Usage: "create a mesh CA (ca.crt, ca.key) in a directory",
			Description: `Creates the mesh's CA. Keep ca.key secret: whoever holds it can add nodes.

Example:
   circuitmesh ca init --dir ./ca --mesh prod`,
			Flags: []cli.Flag{
				&cli.PathFlag{Name: "dir", Usage: "`DIR` for ca.crt and ca.key", Required: true},
				&cli.StringFlag{Name: "mesh", Usage: "mesh `NAME`", Value: node.DefaultMesh},
				forceFlag(),
			},
			Action: func(c *cli.Context) error {
				if err := exactArgs(c); err != nil {
					return err
				}
				ca, err := createCA(c.Path("dir"), c.String("mesh"), c.Bool("force"))
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "created the CA of mesh %q in %s (keep %s secret)\n",
					ca.Mesh, c.Path("dir"), identity.CAKeyFile)
				return nil
			},
		}},
	}
}

func certCommand() *cli.Command {
	return &cli.Command{
		Name:  "cert",
		Usage: "manage node certificates",
		Description: `Issues a node's certificate and key, signed by the mesh CA, into the
directory that becomes the node's --data-dir. To renew one, issue it again
with --force and run "circuitmesh reload" on the node.

Example:
   circuitmesh cert issue b --ca-dir ./ca --out ./b`,
		Subcommands: []*cli.Command{{
			Name:      "issue",
			Usage:     "issue a node certificate signed by the mesh CA",
			ArgsUsage: "NAME",
			Description: `Writes node.crt, node.key and ca.crt for node NAME into --out, which is
then the node's --data-dir.

Example:
   circuitmesh cert issue b --ca-dir ./ca --out ./b
   circuitmesh cert issue ops-1 --ca-dir ./ca --out ./ops-1 --group ops`,
			Flags: []cli.Flag{
				&cli.PathFlag{Name: "ca-dir", Usage: "`DIR` holding ca.crt and ca.key", Required: true},
				&cli.PathFlag{Name: "out", Usage: "`DIR` to write the node's files into", Required: true},
				&cli.DurationFlag{Name: "validity", Usage: "certificate lifetime `DURATION`", Value: identity.DefaultNodeValidity},
				&cli.StringSliceFlag{Name: "group", Usage: "authorization `GROUP` signed into the certificate, for policy rules (repeatable)"},
				forceFlag(),
			},
			Action: func(c *cli.Context) error {
				if err := exactArgs(c, "NAME"); err != nil {
					return err
				}
				ca, err := loadCA(c.Path("ca-dir"))
				if err != nil {
					return err
				}
				return issue(c, ca, c.Args().First(), c.Path("out"),
					identity.IssueOptions{Validity: c.Duration("validity"), Groups: c.StringSlice("group")})
			},
		}},
	}
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "prepare a node's data dir in one step (CA and node certificate)",
		Description: `Issues a certificate for --name into --data-dir, signed by the CA in
--ca-dir. When --ca-dir is not given, the CA lives in <parent of data-dir>/<mesh>-ca,
so that nodes initialised side by side share it. A missing CA is created.

Example:
   circuitmesh init --name a --data-dir ./lab/a      # creates ./lab/circuitmesh-ca
   circuitmesh init --name b --data-dir ./lab/b      # reuses it`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "node `NAME`", Required: true, EnvVars: env("name")},
			dataDirFlag(),
			&cli.PathFlag{Name: "ca-dir", Usage: "CA `DIR` (default: <parent of data-dir>/<mesh>-ca)"},
			&cli.StringFlag{Name: "mesh", Usage: "mesh `NAME` of a new CA", Value: node.DefaultMesh, EnvVars: env("mesh")},
			forceFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := exactArgs(c); err != nil {
				return err
			}
			dataDir, mesh := c.Path("data-dir"), c.String("mesh")
			caDir := c.Path("ca-dir")
			if caDir == "" {
				caDir = filepath.Join(filepath.Dir(filepath.Clean(dataDir)), mesh+"-ca")
			}
			ca, err := identity.LoadCA(caDir)
			switch {
			case errors.Is(err, identity.ErrNoIdentity):
				if ca, err = createCA(caDir, mesh, false); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "created the CA of mesh %q in %s (keep %s secret)\n", ca.Mesh, caDir, identity.CAKeyFile)
			case err != nil:
				return err
			default:
				if c.IsSet("mesh") && ca.Mesh != mesh {
					return usagef("the CA in %s is for mesh %q, not %q", caDir, ca.Mesh, mesh)
				}
				fmt.Fprintf(c.App.Writer, "using the CA of mesh %q in %s\n", ca.Mesh, caDir)
			}
			if err := issue(c, ca, c.String("name"), dataDir, identity.IssueOptions{}); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "start it with: circuitmesh run --data-dir %s\n", dataDir)
			return nil
		},
	}
}

func createCA(dir, mesh string, force bool) (*identity.CA, error) {
	ca, err := identity.NewCA(mesh, 0)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if err := identity.SaveCA(dir, ca, force); err != nil {
		return nil, explainExists(err)
	}
	return ca, nil
}

func loadCA(dir string) (*identity.CA, error) {
	ca, err := identity.LoadCA(dir)
	if errors.Is(err, identity.ErrNoIdentity) {
		return nil, fmt.Errorf("%w; create a CA with `circuitmesh ca init --dir %s`", err, dir)
	}
	return ca, err
}

// issue writes a node identity for name into dir.
func issue(c *cli.Context, ca *identity.CA, name, dir string, o identity.IssueOptions) error {
	id, err := ca.IssueWith(name, o)
	if err != nil {
		return usagef("%v", err)
	}
	if err := identity.SaveIdentity(dir, id, c.Bool("force")); err != nil {
		return explainExists(err)
	}
	groups := ""
	if len(o.Groups) > 0 {
		groups = " in groups " + strings.Join(o.Groups, ", ")
	}
	fmt.Fprintf(c.App.Writer, "issued node %q of mesh %q%s: %s (%s, %s, %s)\n", id.Node, id.Mesh, groups, dir,
		identity.CertFile, identity.KeyFile, identity.CACertFile)
	return nil
}

// explainExists adds the flag that replaces an existing file.
func explainExists(err error) error {
	if errors.Is(err, identity.ErrExists) {
		return fmt.Errorf("%w: keep it, or replace it with --force", err)
	}
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (run as the owner of the directory)", err)
	}
	return err
}
