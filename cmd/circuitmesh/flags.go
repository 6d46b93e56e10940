package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

// envPrefix prefixes the environment variable of every flag:
// --data-dir is CIRCUITMESH_DATA_DIR.
const envPrefix = "CIRCUITMESH_"

// env returns the environment variable name of a flag.
func env(flag string) []string {
	return []string{envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

// defaultDataDir is /var/lib/circuitmesh for root, else
// $XDG_STATE_HOME/circuitmesh or ~/.local/state/circuitmesh.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/circuitmesh"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "circuitmesh")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".circuitmesh"
	}
	return filepath.Join(home, ".local", "state", "circuitmesh")
}

// adminSocketName is the admin socket's file name in the data dir.
const adminSocketName = "admin.sock"

func configFlag() cli.Flag {
	return &cli.PathFlag{
		Name:    "config",
		Usage:   "read flags from `FILE` (lines of \"flag = value\"; flags and environment win)",
		EnvVars: env("config"),
	}
}

func dataDirFlag() cli.Flag {
	return &cli.PathFlag{
		Name:    "data-dir",
		Usage:   "node state `DIR`: identity (node.crt, node.key, ca.crt) and admin socket",
		Value:   defaultDataDir(),
		EnvVars: env("data-dir"),
	}
}

func adminFlag() cli.Flag {
	return &cli.PathFlag{
		Name:    "admin",
		Usage:   "admin socket `PATH` (default: <data-dir>/" + adminSocketName + ")",
		EnvVars: env("admin"),
	}
}

// daemonFlags find the daemon: the flags of every command that talks to it.
func daemonFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{configFlag(), dataDirFlag(), adminFlag()}, extra...)
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"}
}

// adminPath is --admin, or the socket in --data-dir.
func adminPath(c *cli.Context) string {
	if p := c.String("admin"); p != "" {
		return p
	}
	return filepath.Join(c.String("data-dir"), adminSocketName)
}
