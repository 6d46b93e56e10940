package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/cmd/circuitmesh/internal/admin"
	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// policySource is where the daemon's authorization policy comes from:
// --policy-file, else the "policy = RULE" lines of the --config file. The
// daemon reads it again on reload.
type policySource struct {
	config string // the config file, when its policy lines are the policy
	file   string // --policy-file
}

func (s policySource) none() bool { return s.config == "" && s.file == "" }

// String names the source, as a reload reports it.
func (s policySource) String() string {
	if s.file != "" {
		return "--policy-file " + s.file
	}
	return "the policy lines of the config file " + s.config
}

// maxPolicyFile bounds a policy file: 4 MiB, room for policy.MaxRules
// lines of 1 KiB each (a line may hold up to policy.MaxLineLength, but
// not every line at once). A larger file is refused, not cut.
const maxPolicyFile = 4 << 20

// load reads and parses the policy; nil without a source. Rule line
// numbers are those of the file the rules are in.
func (s policySource) load() (*policy.Policy, error) {
	switch {
	case s.file != "":
		b, err := readPolicyFile(s.file)
		if err != nil {
			return nil, fmt.Errorf("--policy-file: %w", err)
		}
		p, err := policy.Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("--policy-file %s: %w", s.file, err)
		}
		return p, nil
	case s.config != "":
		entries, fi, err := readConfig(s.config)
		if err != nil {
			return nil, err
		}
		text, ok := configPolicy(entries)
		if ok {
			if err := checkPolicyFile(s.config, fi); err != nil {
				return nil, fmt.Errorf("config file with policy lines: %w", err)
			}
		}
		p, err := policy.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", s.config, err)
		}
		return p, nil
	}
	return nil, nil
}

// readPolicyFile reads the policy file name once checkPolicyFile has
// passed the file opened (the file checked is the file read).
func readPolicyFile(name string) ([]byte, error) {
	return identity.ReadChecked(name, maxPolicyFile, checkPolicyFile)
}

// checkPolicyFile refuses (an *identity.UnsafeFileError, matching
// identity.ErrUnsafeFile) a file holding the authorization policy that
// another local user could change, as node.key and ca.key are refused:
// whoever writes the policy decides who may open what on the node. Its
// owner must be this process's effective user or root, and neither its
// group nor others may write it. Others may read it: it holds no secret.
func checkPolicyFile(path string, fi fs.FileInfo) error {
	return identity.CheckUnwritable(path, fi, "the policy")
}

// errEmpty says why a reload keeps the inForce rules rather than apply a
// policy without rules, which allows everything: a file emptied or cut
// short while being rewritten would otherwise open every service.
func (s policySource) errEmpty(inForce int) error {
	where, restart := "--policy-file "+s.file, "without --policy-file"
	if s.file == "" {
		where, restart = "the config file "+s.config, "without policy lines in the config file"
	}
	return fmt.Errorf("reload policy: %s has no rules; keeping the %d rules in force, since no rules would allow every circuit (a file being rewritten in place is empty for a moment: write a new file and mv it over the old one). To allow everything, write the rules \"allow dial\" and \"allow relay\", or restart the daemon %s",
		where, inForce, restart)
}

// configPolicy is the policy text of a config file's "policy = RULE"
// lines, each rule on its line of the file so that decisions name the
// file's line numbers, and whether there was any.
func configPolicy(entries []configEntry) (string, bool) {
	var lines []string
	for _, e := range entries {
		if e.key != "policy" {
			continue
		}
		for len(lines) < e.line-1 {
			lines = append(lines, "")
		}
		lines = append(lines, e.value)
	}
	return strings.Join(lines, "\n"), len(lines) > 0
}

// daemonPolicySource finds the policy source of `run`: --policy-file, or
// the config file's policy lines, never both.
func daemonPolicySource(c *cli.Context) (policySource, error) {
	src := policySource{file: c.Path("policy-file")}
	path := c.Path("config")
	if path == "" {
		return src, nil
	}
	entries, err := parseConfig(path)
	if err != nil {
		return src, usagef("%v", err)
	}
	if src.file == "" {
		// The config file's policy lines, even none yet: a reload
		// takes lines added later.
		src.config = path
		return src, nil
	}
	for _, e := range entries {
		if e.key == "policy" {
			return src, usagef("%s:%d: a policy line, while --policy-file %s holds the policy: --policy-file and policy lines in the config file are exclusive", path, e.line, src.file)
		}
	}
	return src, nil
}

// daemonPolicy finds the policy source of `run` and loads it.
func daemonPolicy(c *cli.Context) (policySource, *policy.Policy, error) {
	src, err := daemonPolicySource(c)
	if err != nil {
		return src, nil, err
	}
	p, err := src.load()
	if errors.Is(err, identity.ErrUnsafeFile) {
		return src, nil, err // not a usage error: the file's owner or mode
	}
	if err != nil {
		return src, nil, usagef("%v", err)
	}
	return src, p, nil
}

// daemonNode is the node as the admin API and SIGHUP see it: reloading
// rereads the identity files and the policy.
type daemonNode struct {
	*node.Node
	policy policySource
	// checkConfig, when the daemon has a config file, checks the whole
	// file as the daemon does at start (checkRunConfig).
	checkConfig func() error
	// reload serializes reloads (SIGHUP, `circuitmesh reload`): each
	// reads the files and applies them before the next reads them.
	reload *sync.Mutex
}

// policyRead, when set (tests), runs in ReloadIdentity after the policy
// is read and before it is applied.
var policyRead func()

// ReloadIdentity is Reload for SIGHUP and the tests: the error alone.
func (d daemonNode) ReloadIdentity() error {
	_, err := d.Reload()
	return err
}

// Reload rereads the identity files and, when the daemon has a policy
// source, the policy, all or nothing: both are read and checked first,
// and applied only if both are good (node.ReloadIdentityAndPolicy), so a
// failed reload leaves the identity and the policy in force as they were
// and says so. A policy that does not parse is refused, as is one without
// rules while one with rules is in force (see errEmpty), a policy
// file others may change (identity.ErrUnsafeFile), and a config file
// (holding the policy lines or beside --policy-file) that the daemon
// would refuse at start (checkRunConfig: an unknown flag, a value its
// checks refuse, policy lines beside --policy-file). An --insecure daemon
// has no identity files: its reload is the policy's. Reloads at once are
// applied one after the other, so the policy in force is the one read
// last. The result says what happened to the policy (nil: no policy
// source).
func (d daemonNode) Reload() (*admin.PolicyReload, error) {
	d.reload.Lock()
	defer d.reload.Unlock()
	if d.policy.none() {
		if err := d.Node.ReloadIdentity(); err != nil {
			return nil, fmt.Errorf("%w (%s)", err, keptAll)
		}
		return nil, nil
	}
	if d.checkConfig != nil {
		// The policy is good only with a config file the daemon would
		// start with (whether the policy is in it or in --policy-file):
		// else the next restart fails.
		if err := d.checkConfig(); err != nil {
			return nil, fmt.Errorf("reload: the config file is refused as it would be at start: %w (%s)", err, keptAll)
		}
	}
	p, err := d.policy.load()
	if policyRead != nil {
		policyRead()
	}
	switch inForce := len(d.Policy().Rules()); {
	case err != nil:
		return nil, fmt.Errorf("reload policy: %w (%s)", err, keptAll)
	case len(p.Rules()) == 0 && inForce > 0:
		return nil, fmt.Errorf("%w (%s)", d.policy.errEmpty(inForce), keptAll)
	}
	closed, err := d.Node.ReloadIdentityAndPolicy(p)
	if errors.Is(err, node.ErrNoIdentityFiles) {
		closed, err = d.SetPolicy(p), nil // an --insecure daemon reloads its policy only
	}
	if err != nil {
		return nil, fmt.Errorf("%w (%s, the new policy was not applied)", err, keptAll)
	}
	return &admin.PolicyReload{Source: d.policy.String(), Rules: len(p.Rules()), CircuitsClosed: closed}, nil
}

// keptAll ends the error of a failed reload: nothing changed.
const keptAll = "reload refused: the identity and the policy in force are kept"

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "explain the running daemon's authorization policy",
		Description: `Asks the running daemon which rule of its policy (--policy-file, or the
config file's policy lines) decides a circuit, and why.

Example:
   circuitmesh policy check alice ssh`,
		Subcommands: []*cli.Command{
			withFlags(controlCommand("check", "explain whether FROM may open SERVICE on this node (or, with --relay, be relayed to a node)", "FROM SERVICE | --relay FROM TO",
				`Asks the running daemon how its authorization policy decides a circuit
from the node FROM to SERVICE on this node, and prints the decision with
the rule that made it (or the default). FROM's groups are those of the
certificate that attested its routes to this node, unless --group gives
them. With --relay, decides whether this node relays a circuit from FROM
to the node TO. Exits with status 1 when the circuit is denied.

Examples:
   circuitmesh policy check alice ssh
   circuitmesh policy check --group ops alice ssh
   circuitmesh policy check --relay alice db1`,
				func(c *cli.Context, cl *admin.Client) error {
					want := []string{"FROM", "SERVICE"}
					if c.Bool("relay") {
						want = []string{"FROM", "TO"}
					}
					if err := exactArgs(c, want...); err != nil {
						return err
					}
					if !c.Bool("relay") && c.IsSet("to-group") {
						return usagef("--to-group says the groups of TO, which only --relay has (see `%s --help`)", c.Command.HelpName)
					}
					q := url.Values{"from": {c.Args().Get(0)}, "group": c.StringSlice("group")}
					if c.Bool("relay") {
						q.Set("to", c.Args().Get(1))
						q["to-group"] = c.StringSlice("to-group")
					} else {
						q.Set("service", c.Args().Get(1))
					}
					var res admin.PolicyCheck
					if err := cl.Get(c.Context, admin.PathPolicyCheck, q, &res); err != nil {
						return err
					}
					// The groups are those of a certificate another node
					// presented: the CA signed them, but nothing checked
					// them as names.
					fmt.Fprint(c.App.Writer, termSafeLines(res.String()))
					if !res.Allowed {
						return errReported
					}
					return nil
				}), policyCheckFlags()...),
		},
	}
}

func withFlags(c *cli.Command, flags ...cli.Flag) *cli.Command {
	c.Flags = append(c.Flags, flags...)
	return c
}

// policyCheckFlags are the flags of `policy check` besides the daemon's.
func policyCheckFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "relay", Usage: "decide relaying from FROM to the node TO instead of a dial"},
		&cli.StringSliceFlag{Name: "group", Usage: "FROM is in group `NAME` (repeatable; default: its certificate's groups)"},
		&cli.StringSliceFlag{Name: "to-group", Usage: "with --relay, TO is in group `NAME` (repeatable)"},
	}
}
