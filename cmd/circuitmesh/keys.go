package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// keysCommand manages the running daemon's gossip keyring, the shape of
// `serf keys` and `consul keyring`, one node at a time (docs/SECURITY.md,
// "Rotating the gossip key").
func keysCommand() *cli.Command {
	op := func(name, usage, help string) *cli.Command {
		return withFlags(controlCommand(name, usage, "", help,
			func(c *cli.Context, cl *admin.Client) error {
				if c.NArg() > 0 {
					// The argument is not echoed: it may be the key.
					return usagef("keys %s reads the key from --key-file or stdin, never the command line (got %d arguments)", name, c.NArg())
				}
				key, err := readKey(c)
				if err != nil {
					return err
				}
				var kr node.GossipKeyring
				if err := cl.Post(c.Context, admin.PathKeys, admin.KeyOp{Op: name, Key: key}, &kr); err != nil {
					return err
				}
				printKeyring(c.App.Writer, kr)
				return nil
			}), &cli.PathFlag{Name: "key-file", Usage: "read the base64 key from `FILE` (default: stdin)"})
	}
	return &cli.Command{
		Name:  "keys",
		Usage: "list and rotate the running daemon's gossip encryption keys",
		Description: `Gossip is encrypted with the primary key of a keyring and accepted under
any installed key. To rotate a mesh's key without a partition, run on
every node in turn: install NEW, then (once all have it) use NEW, then
(once all use it) remove OLD, and update --gossip-key-file so a restart
uses NEW. Keys are read from --key-file or stdin and shown only by
fingerprint.

Example:
   (umask 077; head -c 32 /dev/urandom | base64 > new.key)
   circuitmesh keys install --key-file new.key   # on every node, then
   circuitmesh keys use --key-file new.key       # on every node, then
   circuitmesh keys remove --key-file old.key    # on every node`,
		Subcommands: []*cli.Command{
			controlCommand("list", "list the installed gossip keys by fingerprint, primary first", "",
				`Lists the fingerprints of the installed gossip keys; the primary one
(used to encrypt) is marked.

Example:
   circuitmesh keys list`,
				func(c *cli.Context, cl *admin.Client) error {
					if c.NArg() > 0 {
						return usagef("keys list takes no arguments, got %q", c.Args().First())
					}
					var kr node.GossipKeyring
					if err := cl.Get(c.Context, admin.PathKeys, nil, &kr); err != nil {
						return err
					}
					printKeyring(c.App.Writer, kr)
					return nil
				}),
			op("install", "add a gossip key: gossip under it is accepted from now on", `Adds a key to the keyring. Gossip encrypted with it is accepted at once;
the node keeps encrypting with its primary key.

Example:
   circuitmesh keys install --key-file new.key`),
			op("use", "make an installed key the primary one (encrypt gossip with it)", `Makes an installed key the primary key: the node encrypts its gossip with
it from now on. Install it on every node of the mesh first.

Example:
   circuitmesh keys use --key-file new.key`),
			op("remove", "remove a gossip key that is not the primary one", `Removes a key from the keyring: gossip under it is refused from now on.
The primary key cannot be removed; use another one first.

Example:
   circuitmesh keys remove --key-file old.key`),
		},
	}
}

// readKey reads a base64 gossip key from --key-file (which must be
// private: identity.CheckPrivate) or stdin and checks its shape.
func readKey(c *cli.Context) (string, error) {
	var b []byte
	var err error
	from := "stdin"
	if p := c.Path("key-file"); p != "" {
		from = p
		b, err = identity.ReadPrivate(p)
	} else {
		b, err = io.ReadAll(io.LimitReader(c.App.Reader, 4096))
	}
	if err != nil {
		return "", usagef("read the key: %v", err)
	}
	k := strings.TrimSpace(string(b))
	raw, err := base64.StdEncoding.DecodeString(k)
	if err != nil || (len(raw) != 16 && len(raw) != 24 && len(raw) != 32) {
		return "", usagef("key from %s: want 16, 24 or 32 bytes in base64 (make one with `head -c 32 /dev/urandom | base64`)", from)
	}
	return k, nil
}

func printKeyring(w io.Writer, kr node.GossipKeyring) {
	for _, k := range kr.Keys {
		mark := ""
		if k == kr.Primary {
			mark = "  primary"
		}
		fmt.Fprintf(w, "%s%s\n", k, mark)
	}
}
