package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/circuitmesh/circuitmesh/links/identity"
	"github.com/circuitmesh/circuitmesh/node"
)

// cm runs the CLI in-process and returns exit status, stdout and stderr.
func cm(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"circuitmesh"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// parseRun parses a `run` command line without starting a node.
func parseRun(t *testing.T, args ...string) (daemonConfig, error) {
	t.Helper()
	var got daemonConfig
	var buildErr error
	app := &cli.App{
		Writer: &bytes.Buffer{}, ErrWriter: &bytes.Buffer{},
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{{
			Name:   "run",
			Flags:  runFlags(),
			Before: func(c *cli.Context) error { return applyConfig(c, true) },
			Action: func(c *cli.Context) error {
				got, buildErr = buildDaemonConfig(c)
				return nil
			},
		}},
	}
	if err := app.Run(append([]string{"circuitmesh", "run"}, args...)); err != nil {
		return got, err
	}
	return got, buildErr
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunFlagsMapOntoNodeConfig(t *testing.T) {
	dir := t.TempDir()
	d, err := parseRun(t, "--insecure", "--name", "a", "--data-dir", dir, "--listen", "127.0.0.1:5000",
		"--link", "10.0.0.2:4242", "--link", "10.0.0.3:4242", "--leaf",
		"--expose", "web=127.0.0.1:8080", "--forward", "9000=d/web",
		"--gossip", "127.0.0.1:7946", "--join", "10.0.0.2:7946",
		"--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZg==", "--log-format", "json", "--log-level", "debug")
	if err != nil {
		t.Fatal(err)
	}
	n := d.node
	if n.Name != "a" || !n.Insecure || !n.Leaf || n.ListenAddr != "127.0.0.1:5000" || n.DataDir != dir {
		t.Fatalf("node config = %+v", n)
	}
	if strings.Join(n.StaticLinks, ",") != "10.0.0.2:4242,10.0.0.3:4242" {
		t.Fatalf("static links = %v", n.StaticLinks)
	}
	if n.Discovery.BindAddr != "127.0.0.1:7946" || len(n.Discovery.Join) != 1 || string(n.Discovery.Key) != "0123456789abcdef" {
		t.Fatalf("discovery = %+v", n.Discovery)
	}
	if d.admin != filepath.Join(dir, "admin.sock") {
		t.Fatalf("admin socket = %q, want it in the data dir", d.admin)
	}
	if len(d.exposes) != 1 || d.exposes[0] != (exposeSpec{"web", "127.0.0.1:8080"}) {
		t.Fatalf("exposes = %+v", d.exposes)
	}
	if len(d.forwards) != 1 || d.forwards[0] != (forwardSpec{"127.0.0.1:9000", "d", "web"}) {
		t.Fatalf("forwards = %+v (a bare port listens on loopback)", d.forwards)
	}
	if !d.json || d.level.String() != "DEBUG" {
		t.Fatalf("logging = json %v level %v", d.json, d.level)
	}
}

func TestConfigFileEnvironmentAndFlagsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "node.conf", `
# a node
name = from-file
insecure = true
listen = "127.0.0.1:6000"
link = 10.0.0.2:4242
link = 10.0.0.3:4242
log-level = warn
`)
	t.Setenv("CIRCUITMESH_LISTEN", "127.0.0.1:7000")
	d, err := parseRun(t, "--config", cfg, "--data-dir", dir, "--log-level", "error")
	if err != nil {
		t.Fatal(err)
	}
	if d.node.Name != "from-file" || !d.node.Insecure {
		t.Fatalf("file values not applied: %+v", d.node)
	}
	if d.node.ListenAddr != "127.0.0.1:7000" {
		t.Fatalf("listen = %q, want the environment to win over the file", d.node.ListenAddr)
	}
	if d.level.String() != "ERROR" {
		t.Fatalf("log level = %v, want the flag to win over the file", d.level)
	}
	if len(d.node.StaticLinks) != 2 {
		t.Fatalf("repeated file keys: links = %v, want both", d.node.StaticLinks)
	}
}

func TestConfigFileErrorsNameTheLine(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"name = a\nbogus = 1\n": "node.conf:2: unknown flag \"bogus\"",
		"just words\n":          "node.conf:1: want \"flag = value\"",
		"leaf = maybe\n":        "node.conf:1: leaf = \"maybe\"",
	} {
		cfg := writeFile(t, dir, "node.conf", content)
		_, err := parseRun(t, "--config", cfg, "--insecure", "--name", "a")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want it to contain %q", content, err, want)
		}
	}
}

func TestBadRunFlagsAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--insecure"}, // no name
		{"--insecure", "--name", "a", "--expose", "web"},
		{"--insecure", "--name", "a", "--forward", "9000=d"},
		{"--insecure", "--name", "a", "--listen", "nope"},
		{"--insecure", "--name", "a", "--log-format", "xml"},
		{"--insecure", "--name", "a", "--gossip-key", "short"},
		{"--insecure", "--name", "a", "--gossip-key-file", "/nonexistent/gossip.key"},
		// An empty key file is no key: gossip would run in plaintext.
		{"--insecure", "--name", "a", "--gossip-key-file", writeFile(t, dir, "empty.key", "")},
		{"--insecure", "--name", "a", "--gossip-key-file", writeFile(t, dir, "blank.key", " \n")},
		{"--insecure", "--name", "a", "--target-links", "6", "--max-links", "4"},
		{"--insecure", "--name", "a", "--join", "10.0.0.1:7946"},
	} {
		_, err := parseRun(t, args...)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("run %v: %v, want a usage error", args, err)
		}
	}
}

func TestMissingIdentitySaysWhichInitFixesIt(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := cm(t, "run", "--data-dir", dir, "--name", "a")
	if code == 0 {
		t.Fatal("run without identity succeeded")
	}
	want := "circuitmesh init --name a --data-dir " + dir
	if !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("stderr = %q, want one line naming %q", stderr, want)
	}
}

func TestInitCreatesSharedCAAndRefusesToOverwrite(t *testing.T) {
	lab := t.TempDir()
	code, out, stderr := cm(t, "init", "--name", "a", "--data-dir", filepath.Join(lab, "a"))
	if code != 0 {
		t.Fatalf("init a: %d %s", code, stderr)
	}
	caDir := filepath.Join(lab, node.DefaultMesh+"-ca")
	if !strings.Contains(out, "created the CA") || !strings.Contains(out, caDir) {
		t.Fatalf("init did not say where the CA went: %q", out)
	}
	if code, out, stderr = cm(t, "init", "--name", "b", "--data-dir", filepath.Join(lab, "b")); code != 0 || !strings.Contains(out, "using the CA") {
		t.Fatalf("init b: %d %q %s", code, out, stderr)
	}
	a, err := identity.LoadDir(filepath.Join(lab, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.LoadDir(filepath.Join(lab, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.VerifyPeer([][]byte{b.Cert.Raw}, time.Now()); err != nil {
		t.Fatalf("a does not trust b: %v", err)
	}
	for _, f := range []string{"a/node.key", node.DefaultMesh + "-ca/ca.key"} {
		fi, err := os.Stat(filepath.Join(lab, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	key, _ := os.ReadFile(filepath.Join(lab, "a", "node.key"))
	code, _, stderr = cm(t, "init", "--name", "a", "--data-dir", filepath.Join(lab, "a"))
	if code == 0 || !strings.Contains(stderr, "--force") {
		t.Fatalf("second init of a: %d %q, want a refusal mentioning --force", code, stderr)
	}
	if again, _ := os.ReadFile(filepath.Join(lab, "a", "node.key")); !bytes.Equal(key, again) {
		t.Fatal("refused init still replaced the key")
	}
	if code, _, stderr = cm(t, "init", "--name", "a", "--data-dir", filepath.Join(lab, "a"), "--force"); code != 0 {
		t.Fatalf("init --force: %s", stderr)
	}
}

func TestCAInitAndCertIssue(t *testing.T) {
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "n1")
	if code, _, stderr := cm(t, "ca", "init", "--dir", caDir, "--mesh", "prod"); code != 0 {
		t.Fatal(stderr)
	}
	if code, _, stderr := cm(t, "ca", "init", "--dir", caDir, "--mesh", "prod"); code == 0 || !strings.Contains(stderr, "--force") {
		t.Fatalf("second ca init: %d %q", code, stderr)
	}
	if code, _, stderr := cm(t, "cert", "issue", "n1", "--ca-dir", caDir, "--out", out); code != 0 {
		t.Fatal(stderr)
	}
	id, err := identity.LoadDir(out)
	if err != nil || id.Node != "n1" || id.Mesh != "prod" {
		t.Fatalf("issued identity %+v, %v", id, err)
	}
	code, _, stderr := cm(t, "cert", "issue", "n2", "--ca-dir", filepath.Join(dir, "none"), "--out", out)
	if code == 0 || !strings.Contains(stderr, "circuitmesh ca init --dir") {
		t.Fatalf("issue without a CA: %d %q", code, stderr)
	}
	grouped := filepath.Join(dir, "ops-1")
	if code, stdout, stderr := cm(t, "cert", "issue", "ops-1", "--ca-dir", caDir, "--out", grouped, "--group", "ops", "--group", "web"); code != 0 || !strings.Contains(stdout, "in groups ops, web") {
		t.Fatalf("issue with groups: %d %q %q", code, stdout, stderr)
	}
	if id, err := identity.LoadDir(grouped); err != nil || strings.Join(id.Groups(), ",") != "ops,web" {
		t.Fatalf("issued groups %v, %v", id.Groups(), err)
	}
	if code, _, stderr := cm(t, "cert", "issue", "Bad Name", "--ca-dir", caDir, "--out", out); code != 2 {
		t.Fatalf("issue with an invalid name: %d %q, want usage error", code, stderr)
	}
}

// eachCommand calls f for every command with its full name ("cert issue"),
// the groups of subcommands ("cert") included.
func eachCommand(f func(name string, c *cli.Command)) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			f(prefix+c.Name, c)
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", newApp(nil, nil, nil).Commands)
}

func TestEveryCommandHelpHasAnExample(t *testing.T) {
	eachCommand(func(name string, c *cli.Command) {
		code, out, _ := cm(t, append(strings.Fields(name), "--help")...)
		if code != 0 || !strings.Contains(out, "Example") || !strings.Contains(out, "circuitmesh "+name) {
			t.Errorf("circuitmesh %s --help: exit %d, no example:\n%s", name, code, out)
		}
	})
}

func TestUnknownCommandsAndFlagsExitTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"peers", "--bogus"}, {"ping"}, {"dial", "d"}} {
		code, _, stderr := cm(t, args...)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "--help") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line pointing at --help", args, code, stderr)
		}
	}
}

// TestFlagBeforeTheCommandSaysWhereItGoes: `circuitmesh --data-dir DIR
// peers` said "flag provided but not defined: -data-dir (see `circuitmesh
// --help`)", and that help lists no --data-dir: the flag is the
// command's. Now the error gives the command line that works, and it does.
func TestFlagBeforeTheCommandSaysWhereItGoes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ args, fixed []string }{
		{[]string{"--data-dir", dir, "peers"}, []string{"peers", "--data-dir", dir}},
		{[]string{"--data-dir=" + dir, "-json", "ping", "b", "-c", "1"}, []string{"ping", "--data-dir=" + dir, "-json", "b", "-c", "1"}},
		{[]string{"--data-dir", dir, "keys", "list"}, []string{"keys", "list", "--data-dir", dir}},
	} {
		code, _, stderr := cm(t, tc.args...)
		want := "circuitmesh " + strings.Join(tc.fixed, " ")
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasSuffix(strings.TrimSpace(stderr), want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line ending in %q", tc.args, code, stderr, want)
			continue
		}
		// ping reports the failure on stdout, as its other failures.
		if code, out, stderr := cm(t, tc.fixed...); code != 1 || !strings.Contains(out+stderr, "daemon not running") {
			t.Errorf("the suggested %q: exit %d, output %q; want it to look for the daemon in %s", want, code, out+stderr, dir)
		}
	}
	if code, _, stderr := cm(t, "--bogus", "peers"); code != 2 || !strings.Contains(stderr, "not defined: -bogus") {
		t.Errorf("--bogus peers: exit %d, stderr %q; want 2 and the flag named as unknown", code, stderr)
	}
}

func TestInspectionWithoutDaemonSaysItIsNotRunning(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := cm(t, "peers", "--data-dir", dir)
	if code != 1 || !strings.Contains(stderr, "daemon not running") || !strings.Contains(stderr, filepath.Join(dir, "admin.sock")) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestRepeatableFlagsFromTheEnvironmentAreCommaSeparated(t *testing.T) {
	t.Setenv("CIRCUITMESH_LINK", "10.0.0.2:4242,10.0.0.3:4242")
	t.Setenv("CIRCUITMESH_INSECURE", "true")
	t.Setenv("CIRCUITMESH_NAME", "env-node")
	d, err := parseRun(t, "--data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if d.node.Name != "env-node" || len(d.node.StaticLinks) != 2 {
		t.Fatalf("from the environment: name %q, links %v", d.node.Name, d.node.StaticLinks)
	}
}

func TestInspectionCommandsReadTheDaemonsConfigFile(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "state")
	// The daemon's file names flags `peers` does not have; they are ignored.
	cfg := writeFile(t, dir, "node.conf", "data-dir = "+dataDir+"\nlisten = 0.0.0.0:4242\nlink = 10.0.0.2:4242\n")
	code, _, stderr := cm(t, "peers", "--config", cfg)
	if code != 1 || !strings.Contains(stderr, filepath.Join(dataDir, "admin.sock")) {
		t.Fatalf("peers --config: exit %d, %q; want it to look for the socket in the file's data dir", code, stderr)
	}
}

func TestMissingRequiredFlagsAreOneLineUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"init"},
		{"ca", "init"},
		{"cert", "issue", "alpha"},
		{"cert", "issue", "alpha", "--ca-dir", "/nonexistent"},
	} {
		code, out, stderr := cm(t, args...)
		if code != 2 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "needs --") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, no help dump, one line naming the flag", args, code, out, stderr)
		}
	}
}

func TestCertIssueTakesNamesThatLookLikeHelp(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if code, _, stderr := cm(t, "ca", "init", "--dir", caDir); code != 0 {
		t.Fatal(stderr)
	}
	for _, name := range []string{"h", "help"} {
		out := filepath.Join(dir, name)
		code, stdout, stderr := cm(t, "cert", "issue", name, "--ca-dir", caDir, "--out", out)
		if code != 0 || !strings.Contains(stdout, `issued node "`+name+`"`) {
			t.Fatalf("cert issue %s: exit %d, %q %q", name, code, stdout, stderr)
		}
		if id, err := identity.LoadDir(out); err != nil || id.Node != name {
			t.Fatalf("cert issue %s wrote %+v, %v", name, id, err)
		}
	}
}

func TestVersionFlagAndCommand(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, stderr := cm(t, args...)
		if code != 0 || !strings.HasPrefix(out, "circuitmesh ") || !strings.Contains(out, "go1.") || stderr != "" {
			t.Errorf("%v: exit %d, %q %q", args, code, out, stderr)
		}
	}
}

func TestExposeForwardAndLinkCostArgumentsAreCheckedInTheCLI(t *testing.T) {
	dir := t.TempDir() // no daemon: a valid command would fail with exit 1
	for _, args := range [][]string{
		{"expose", "web", "300.1.1.1:80"},
		{"expose", "bad name", "127.0.0.1:80"},
		{"expose", "web", "127.0.0.1:0"},
		{"forward", "127.0.0.1:9001", "charlie"},
		{"forward", "127.0.0.1:9001", "Charlie/web"},
		{"forward", "127.0.0.1:99999", "charlie/web"},
		{"link-cost", "b", "5"},
		{"link-cost", "b", "cheap"},
	} {
		code, _, stderr := cm(t, append(args, "--data-dir", dir)...)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || strings.Contains(stderr, "--expose") || strings.Contains(stderr, "--forward") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line in the command's own terms", args, code, stderr)
		}
	}
	if _, err := parseRun(t, "--insecure", "--name", "a", "--link-cost", "b=5"); err == nil {
		t.Error("--link-cost b=5 (below the minimum) accepted")
	}
	d, err := parseRun(t, "--insecure", "--name", "a", "--link-cost", "b=500", "--link-cost", "c=auto")
	if err != nil || len(d.node.LinkCosts) != 1 || d.node.LinkCosts["b"] != 500 {
		t.Fatalf("--link-cost: %v %v", d.node.LinkCosts, err)
	}
}

func TestEveryCommandHelpHasADescription(t *testing.T) {
	eachCommand(func(name string, c *cli.Command) {
		if strings.HasPrefix(strings.TrimSpace(c.Description), "Example") {
			t.Errorf("circuitmesh %s: the description is only an example", name)
		}
		for _, f := range c.Flags {
			if strings.Contains(strings.SplitN(cli.FlagStringer(f), "\t", 2)[0], " value") {
				t.Errorf("circuitmesh %s: flag %s has no placeholder: %s", name, f.Names()[0], cli.FlagStringer(f))
			}
		}
	})
}

// End-to-end security is on unless --e2e=off; other values are refused.
func TestRunFlagE2E(t *testing.T) {
	for args, want := range map[string]node.E2E{"": node.E2EOn, "--e2e=on": node.E2EOn, "--e2e=off": node.E2EOff} {
		a := []string{"--insecure", "--name", "a", "--data-dir", t.TempDir()}
		if args != "" {
			a = append(a, args)
		}
		d, err := parseRun(t, a...)
		if err != nil {
			t.Fatal(err)
		}
		if d.node.E2E != want {
			t.Fatalf("%q: E2E = %v, want %v", args, d.node.E2E, want)
		}
	}
	if _, err := parseRun(t, "--insecure", "--name", "a", "--data-dir", t.TempDir(), "--e2e=maybe"); err == nil {
		t.Fatal("--e2e=maybe accepted")
	}
}

func TestDiscoveryFlagsAndGossipKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte("MDEyMzQ1Njc4OWFiY2RlZg==\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := parseRun(t, "--insecure", "--name", "a", "--data-dir", dir, "--gossip", "127.0.0.1:7946",
		"--join", "dns+srv:_gossip._udp.circuitmesh.default.svc", "--gossip-key-file", keyFile,
		"--target-links", "3", "--max-links", "7", "--static-in-links", "2")
	if err != nil {
		t.Fatal(err)
	}
	dc := d.node.Discovery
	if string(dc.Key) != "0123456789abcdef" || dc.TargetLinks != 3 || dc.MaxLinks != 7 || dc.Join[0] != "dns+srv:_gossip._udp.circuitmesh.default.svc" ||
		dc.StaticInLinks != 2 {
		t.Fatalf("discovery = %+v", dc)
	}
}

func TestGossipKeyOnTheCommandLineIsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"circuitmesh", "run", "--insecure", "--name", "a", "--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZg=="},
		{"circuitmesh", "run", "--gossip-key=MDEyMzQ1Njc4OWFiY2RlZg==", "--insecure", "--name", "a"},
	} {
		var stderr bytes.Buffer
		if code := run(args, strings.NewReader(""), io.Discard, &stderr); code != 2 {
			t.Fatalf("%v: exit %d, want 2 (usage)", args, code)
		}
		if !strings.Contains(stderr.String(), "--gossip-key-file") {
			t.Fatalf("%v: the refusal does not say what to use instead: %s", args, stderr.String())
		}
	}
}

// The link-count flags are unset by default, and node then takes its own
// defaults (node.DiscoveryConfig: target 7, at most 14, 4 static
// incoming): the help shows those, once, not the flags' zero value.
func TestRunHelpShowsNodeLinkDefaults(t *testing.T) {
	code, out, _ := cm(t, "run", "--help")
	if code != 0 {
		t.Fatalf("run --help: exit %d", code)
	}
	for flag, want := range map[string]string{"target-links": "7", "max-links": "14", "static-in-links": "4"} {
		var line string
		for l := range strings.Lines(out) {
			if strings.HasPrefix(strings.TrimSpace(l), "--"+flag+" ") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("run --help lists no --%s:\n%s", flag, out)
			continue
		}
		if n := strings.Count(line, "default"); n != 1 || !strings.Contains(line, "(default: "+want+")") {
			t.Errorf("run --help on --%s: %q, want one default, %s", flag, strings.TrimSpace(line), want)
		}
	}
}

// simulate exits 1 on a script that does not parse, naming its file and
// line, and 2 on a bad command line, each with one line on stderr.
func TestSimulateExitStatusAndErrors(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, dir, "bad.sim", "nodes a b\nlink a-b\n\nkill b\nrestart a\n")
	good := writeFile(t, dir, "good.sim", "nodes a b\nlink a-b\n")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"simulate", bad}, 1, "bad.sim:5: restart a: a is running (kill it first)"},
		{[]string{"simulate", "--backend", "foo", good}, 2, `--backend "foo": want quic or mem`},
		{[]string{"simulate", good, good}, 2, "at most one SCRIPT"},
		{[]string{"simulate", "--log-level", "loud", good}, 2, `--log-level "loud"`},
		{[]string{"simulate", "--seed", "0", good}, 2, "--seed 0: want 1 or more"},
	} {
		code, _, stderr := cm(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want %d and one line with %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}
