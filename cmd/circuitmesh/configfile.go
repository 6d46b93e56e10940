package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// configEntry is one "flag = value" line of a config file.
type configEntry struct {
	line       int
	key, value string
}

// parseConfig reads a config file: one "flag = value" per line, where flag
// is a long flag name without dashes in front (name, link, data-dir...).
// Blank lines and lines starting with # are ignored; a value may be
// double-quoted (Go syntax); a repeatable flag is given on several lines.
// "policy = RULE" lines are not flags but the daemon's authorization
// policy, one rule a line (see policy.go). A file holding gossip-key must
// be private to its user, like a key file (identity.CheckPrivate).
func parseConfig(path string) ([]configEntry, error) {
	entries, _, err := readConfig(path)
	return entries, err
}

// readConfig is parseConfig, also returning the file's FileInfo as
// opened (the file checked is the file read).
func readConfig(path string) ([]configEntry, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("config file: %w", err)
	}
	if fi.Mode().IsRegular() && fi.Size() > maxConfigFile {
		return nil, nil, &ConfigTooLargeError{Path: path, Limit: maxConfigFile}
	}
	// The size a regular file has now may grow, and other files (a
	// FIFO, /dev/stdin of a stream) have none: the read is bounded too.
	lr := &io.LimitedReader{R: f, N: maxConfigFile + 1}
	entries, err := scanConfig(path, lr, fi)
	if lr.N <= 0 {
		return nil, nil, &ConfigTooLargeError{Path: path, Limit: maxConfigFile}
	}
	return entries, fi, err
}

// maxConfigFile bounds a config file: 1 MiB, room for thousands of flag
// and policy lines. A larger file, or one that never ends, is refused at
// once rather than read into memory without limit.
const maxConfigFile = 1 << 20

// ErrConfigTooLarge matches a *ConfigTooLargeError.
var ErrConfigTooLarge = errors.New("config file too large")

// ConfigTooLargeError refuses a config file larger than Limit bytes.
type ConfigTooLargeError struct {
	Path  string
	Limit int64
}

func (e *ConfigTooLargeError) Error() string {
	return fmt.Sprintf("config file %s is larger than %d MiB, the most the daemon reads (is it the config file?)", e.Path, e.Limit>>20)
}

func (e *ConfigTooLargeError) Is(target error) bool { return target == ErrConfigTooLarge }

// maxConfigLine bounds a line of a config file: room for any flag value
// or policy rule (policy.MaxLineLength) with its key. A longer line is
// refused, naming it.
const maxConfigLine = 64 << 10

// scanConfig parses the config file path, read from r, fi its FileInfo.
func scanConfig(path string, r io.Reader, fi fs.FileInfo) ([]configEntry, error) {
	var out []configEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), maxConfigLine)
	n := 1
	for ; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("%s:%d: want \"flag = value\", got %q", path, n, line)
		}
		if strings.HasPrefix(v, `"`) {
			uq, err := strconv.Unquote(v)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: bad quoted value %s: %v", path, n, v, err)
			}
			v = uq
		}
		// One value a line: a policy line holding two rules would shift
		// the line every later rule is named by. A bare carriage return
		// (a file with CR line ends) would make one value of the lines
		// after it.
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("%s:%d: value %q holds a line break: give one value a line", path, n, v)
		}
		out = append(out, configEntry{n, strings.TrimPrefix(k, "--"), v})
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("%s:%d: line longer than %d KiB (a config line holds one flag and its value)", path, n, maxConfigLine>>10)
	} else if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	for _, e := range out {
		if e.key != "gossip-key" {
			continue
		}
		if err := identity.CheckPrivate(path, fi); err != nil {
			return nil, fmt.Errorf("config file with gossip-key (line %d): %w", e.line, err)
		}
		break
	}
	return out, nil
}

// applyConfig sets the flags named in the --config file that were not set
// on the command line or in the environment. With strict, a key that is not
// a flag of this command is an error; otherwise it is ignored (so that the
// inspection commands can read the daemon's file for its data dir).
func applyConfig(c *cli.Context, strict bool) error {
	return applyConfigFile(c, strict, false)
}

// applyConfigFile is applyConfig; with fileWins, the file's values also
// replace (or, for a flag that takes several, join) those of the command
// line and the environment, so that every value of the file is checked.
func applyConfigFile(c *cli.Context, strict, fileWins bool) error {
	path := c.Path("config")
	if path == "" {
		return nil
	}
	entries, err := parseConfig(path)
	if err != nil {
		return usagef("%v", err)
	}
	known, repeatable, canon := map[string]bool{}, map[string]bool{}, map[string]string{}
	for _, f := range c.Command.Flags {
		_, many := f.(*cli.StringSliceFlag)
		for _, n := range f.Names() {
			known[n], repeatable[n], canon[n] = true, many, f.Names()[0]
		}
	}
	// A flag that takes one value set twice in the file: one of the
	// lines would be dropped without a word (the last won).
	first := map[string]int{}
	for _, e := range entries {
		if !known[e.key] || repeatable[e.key] {
			continue
		}
		if n, ok := first[canon[e.key]]; ok {
			return usagef("%s:%d: %s is set again (first on line %d); only flags that take several values may repeat", path, e.line, e.key, n)
		}
		first[canon[e.key]] = e.line
	}
	fromFile := &configLines{path: path}
	explicit := map[string]bool{}
	for _, e := range entries {
		explicit[e.key] = !fileWins && (explicit[e.key] || c.IsSet(e.key))
	}
	for _, e := range entries {
		switch {
		case e.key == "config":
			return usagef("%s:%d: a config file cannot name another one", path, e.line)
		case e.key == "policy":
			// an authorization rule: read by daemonPolicy (policy.go)
		case !known[e.key]:
			if strict {
				return usagef("%s:%d: unknown flag %q (see `%s --help`)", path, e.line, e.key, c.Command.HelpName)
			}
		case explicit[e.key]:
			// the command line and the environment win
		default:
			if err := c.Set(e.key, e.value); err != nil {
				return usagef("%s:%d: %s = %q: %v", path, e.line, e.key, e.value, err)
			}
			fromFile.set = append(fromFile.set, configEntry{e.line, canon[e.key], e.value})
		}
	}
	c.App.Metadata[configLinesKey] = fromFile
	return nil
}

// configLinesKey keys the *configLines of a command in its App.Metadata.
const configLinesKey = "circuitmesh.configLines"

// configLines remembers which line of the config file set which flag, so
// that a check of the value names the line.
type configLines struct {
	path string
	set  []configEntry // by the flag's first name
}

// atConfigLine prefixes err with FILE:LINE when one of the flags (by
// their first names; the first of them found) got its value from a line
// of the config file. Otherwise, or when err is nil, it returns err as it
// is.
func atConfigLine(c *cli.Context, err error, flags ...string) error {
	for _, f := range flags {
		if e, ok := configLine(c, func(e configEntry) bool { return e.key == f }); ok {
			return prefixLine(err, e)
		}
	}
	return err
}

// atConfigValue is atConfigLine for one value of a flag that takes
// several: the line that gave that value.
func atConfigValue(c *cli.Context, err error, flag, value string) error {
	if e, ok := configLine(c, func(e configEntry) bool { return e.key == flag && e.value == value }); ok {
		return prefixLine(err, e)
	}
	return err
}

// configLine finds the config line (with the file's path as key) that
// set a flag and matches.
func configLine(c *cli.Context, match func(configEntry) bool) (configEntry, bool) {
	lines, _ := c.App.Metadata[configLinesKey].(*configLines)
	if lines == nil {
		return configEntry{}, false
	}
	for _, e := range lines.set {
		if match(e) {
			e.key = lines.path
			return e, true
		}
	}
	return configEntry{}, false
}

// prefixLine prefixes err (nil stays nil) with the FILE:LINE of e, whose
// key is the file's path, keeping a usage error one.
func prefixLine(err error, e configEntry) error {
	var ue *usageError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		return usagef("%s:%d: %w", e.key, e.line, err)
	}
	return fmt.Errorf("%s:%d: %w", e.key, e.line, err)
}
