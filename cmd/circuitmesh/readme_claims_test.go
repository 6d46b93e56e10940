package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// readmeRunRows are the rows of the flag table in README.md's
// Configuration section: flag column and default column.
func readmeRunRows(t *testing.T) [][2]string {
	t.Helper()
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(doc), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var rows [][2]string
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cols := strings.Split(strings.ReplaceAll(line, `\|`, "/"), "|")
		if len(cols) < 4 {
			t.Fatalf("row %q has too few columns", line)
		}
		rows = append(rows, [2]string{strings.TrimSpace(cols[1]), strings.TrimSpace(cols[2])})
	}
	if len(rows) < 20 {
		t.Fatalf("README.md's flag table has %d rows", len(rows))
	}
	return rows
}

var (
	readmeFlag    = regexp.MustCompile("--[a-z][a-z0-9-]*")
	readmeLiteral = regexp.MustCompile("^(?:`([^`]*)`|([0-9]+)|.*: ([0-9]+))$")
)

// The flag table of README.md names every flag of circuitmesh run and no
// other (--config is the paragraph above it; --gossip-key is the
// CIRCUITMESH_GOSSIP_KEY row, since the command line refuses it), and
// each default it states as a value is the one the flag has.
func TestReadmeFlagTableIsRunsFlags(t *testing.T) {
	flags := map[string]cli.Flag{}
	for _, f := range runFlags() {
		flags[f.Names()[0]] = f
	}
	delete(flags, "config")
	delete(flags, "gossip-key")

	documented := map[string]bool{}
	checked := 0
	for _, row := range readmeRunRows(t) {
		names := readmeFlag.FindAllString(row[0], -1)
		for _, n := range names {
			n = strings.TrimPrefix(n, "--")
			documented[n] = true
			if _, ok := flags[n]; !ok {
				t.Errorf("README.md documents %s, which circuitmesh run does not take", n)
			}
		}
		if len(names) != 1 {
			continue
		}
		f, ok := flags[strings.TrimPrefix(names[0], "--")].(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		got := f.GetDefaultText()
		if u, err := strconv.Unquote(got); err == nil {
			got = u
		}
		switch m := readmeLiteral.FindStringSubmatch(row[1]); {
		case row[1] == "off":
			checked++
			if got != "" && got != "false" {
				t.Errorf("README.md: %s is off by default; the flag's default is %q", names[0], got)
			}
		case m != nil && !strings.Contains(row[1], "<"): // not a path in another flag's value
			checked++
			if want := m[1] + m[2] + m[3]; got != want {
				t.Errorf("README.md: %s defaults to %q; the flag's default is %q", names[0], want, got)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d defaults checked", checked)
	}
	var missing []string
	for n := range flags {
		if !documented[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("circuitmesh run takes %q, which README.md's flag table does not list", missing)
	}
}

// README.md's list of the inspection and control commands, which find the
// daemon through --data-dir, --admin and --config, is every command that
// takes those flags, other than run.
func TestReadmeInspectionCommandsAreThoseOfTheAdminSocket(t *testing.T) {
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(strings.Join(strings.Fields(string(doc)), " "), "The inspection and control commands (")
	if !ok {
		t.Fatal("README.md does not list the inspection and control commands")
	}
	list, _, _ = strings.Cut(list, ")")
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z -]+)`").FindAllStringSubmatch(list, -1) {
		listed[m[1]] = true
	}
	found := map[string]bool{}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := strings.TrimSpace(prefix + " " + c.Name)
			walk(name, c.Subcommands)
			flags := map[string]bool{}
			for _, f := range c.Flags {
				flags[f.Names()[0]] = true
			}
			if name == "run" || !flags["admin"] {
				continue
			}
			if !flags["data-dir"] || !flags["config"] {
				t.Errorf("%s takes --admin but not --data-dir and --config", name)
			}
			found[name] = true
			top, _, _ := strings.Cut(name, " ")
			if !listed[name] && !listed[top] {
				t.Errorf("%s talks to the daemon; README.md's list of inspection and control commands leaves it out", name)
			}
		}
	}
	walk("", newApp(nil, nil, nil).Commands)
	for name := range listed {
		if !found[name] && !found[name+" list"] {
			t.Errorf("README.md lists %s among the commands that find the daemon; no such command takes --admin", name)
		}
	}
	if len(found) < 15 {
		t.Fatalf("only %d commands take --admin", len(found))
	}
}

// The default data dir is the one README.md names: /var/lib/circuitmesh
// for root, else $XDG_STATE_HOME/circuitmesh or ~/.local/state/circuitmesh.
func TestDefaultDataDirIsTheReadmes(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Setenv("XDG_STATE_HOME", t.TempDir())
		if got := defaultDataDir(); got != "/var/lib/circuitmesh" {
			t.Fatalf("root's default data dir is %s, want /var/lib/circuitmesh", got)
		}
		return
	}
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	if got, want := defaultDataDir(), filepath.Join(state, "circuitmesh"); got != want {
		t.Errorf("with XDG_STATE_HOME=%s the default data dir is %s, want %s", state, got, want)
	}
	home := t.TempDir()
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", home)
	if got, want := defaultDataDir(), filepath.Join(home, ".local", "state", "circuitmesh"); got != want {
		t.Errorf("without XDG_STATE_HOME the default data dir is %s, want %s", got, want)
	}
}

// `make help` says what `make test-long` runs without the race detector
// as its recipe does, and in README.md's words: every package the recipe
// runs without -race and the N-node subtest it runs so, by "-race but for
// ...". Its line said "-race but for simulate" after routing and the
// 100-node gossip mesh had left the race detector too.
func TestMakeHelpSaysWhatTestLongRuns(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	mk, readme := read("Makefile"), read("README.md")
	m := regexp.MustCompile(`(?m)^\t@echo "test-long +(.*)"$`).FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("Makefile's help has no test-long line")
	}
	help := m[1]
	_, recipe, ok := strings.Cut(mk, "\ntest-long:\n")
	if !ok {
		t.Fatal("Makefile has no test-long target")
	}
	recipe, _, _ = strings.Cut(recipe, "\n\n")
	var without []string // what the recipe runs without -race
	for _, line := range strings.Split(recipe, "\n") {
		if !strings.Contains(line, "$(GO) test") || strings.Contains(line, "-race") {
			continue
		}
		if sub := regexp.MustCompile(`-run '[^']*/([0-9]+)'`).FindStringSubmatch(line); sub != nil {
			without = append(without, sub[1]+"-node")
		} else if pkg := regexp.MustCompile(`\./([a-z]+)/`).FindStringSubmatch(line); pkg != nil {
			without = append(without, pkg[1])
		}
	}
	if len(without) < 3 {
		t.Fatalf("found %v run without -race in test-long's recipe:\n%s", without, recipe)
	}
	_, clause, ok := strings.Cut(help, "-race but for ")
	if !ok {
		t.Fatalf("make help's test-long line %q does not say what runs without -race", help)
	}
	for _, w := range without {
		if !strings.Contains(clause, w) {
			t.Errorf("make help's test-long line %q does not name %s, which the recipe runs without -race", help, w)
		}
	}
	m = regexp.MustCompile("(?m)^make test-long +# .*-race but for (.*)$").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no make test-long line saying what runs without -race")
	}
	if !strings.HasPrefix(m[1], clause) {
		t.Errorf("make help says test-long runs with -race but for %q; README.md says %q", clause, m[1])
	}
}
