//go:build linux

// Package deploy holds the deployment files (Dockerfile, k8s/, systemd/,
// grafana/) and tests that check them against the code they deploy.
package deploy

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// binary builds cmd/circuitmesh once for the tests that run it.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "circuitmesh-deploy-")
		if err != nil {
			buildErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil { // the service user runs it too
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "circuitmesh")
		cmd := exec.Command("go", "build", "-o", binPath, "../cmd/circuitmesh")
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

// runFlags is the set of flags `circuitmesh run --help` lists, without
// their dashes, and the CIRCUITMESH_* variables it reads.
func runFlags(t *testing.T) (flags, envs map[string]bool) {
	t.Helper()
	out, err := exec.Command(binary(t), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("run --help: %v\n%s", err, out)
	}
	flags, envs = map[string]bool{}, map[string]bool{}
	flagRE := regexp.MustCompile(`^\s+--([a-z0-9-]+)`)
	envRE := regexp.MustCompile(`\$(CIRCUITMESH_[A-Z0-9_]+)`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := flagRE.FindStringSubmatch(line); m != nil {
			flags[m[1]] = true
		}
		for _, m := range envRE.FindAllStringSubmatch(line, -1) {
			envs[m[1]] = true
		}
	}
	if len(flags) < 10 {
		t.Fatalf("run --help lists only %d flags:\n%s", len(flags), out)
	}
	return flags, envs
}

// TestDockerfileCopiesReplacedModulesBeforeDownload: deploy/Dockerfile
// copies go.mod and go.sum and runs `go mod download` before the rest of
// the tree is copied. go.mod replaces a module by a directory of the
// repository, which `go mod download` reads, so that step (and the
// README's `docker build -f deploy/Dockerfile .`) failed ("reading
// internal/quic-go/go.mod: no such file or directory") until the
// directory was copied before it.
func TestDockerfileCopiesReplacedModulesBeforeDownload(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var local []string // directories modules are replaced by
	replaceRE := regexp.MustCompile(`(?m)^\s*(?:replace\s+)?\S+(?:\s+v\S+)?\s+=>\s+(\.{1,2}/\S+)\s*$`)
	for _, m := range replaceRE.FindAllStringSubmatch(string(gomod), -1) {
		local = append(local, filepath.Clean(m[1]))
	}
	if len(local) == 0 {
		t.Skip("go.mod replaces no module by a directory")
	}
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var copied []string // sources copied before the download, in the build stage
	found := false
	for _, line := range strings.Split(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			copied = nil
		case "COPY", "ADD":
			var srcs []string
			for _, a := range f[1 : len(f)-1] {
				if !strings.HasPrefix(a, "--") {
					srcs = append(srcs, filepath.Clean(a))
				}
			}
			copied = append(copied, srcs...)
		case "RUN":
			if strings.Contains(line, "go mod download") {
				found = true
				for _, dir := range local {
					ok := false
					for _, c := range copied {
						if c == "." || c == dir || strings.HasPrefix(dir, c+"/") {
							ok = true
						}
					}
					if !ok {
						t.Errorf("Dockerfile runs `go mod download` having copied only %v, but go.mod replaces a module by %s: "+
							"the step fails (reading %s/go.mod: no such file or directory)", copied, dir, dir)
					}
				}
			}
		}
	}
	if !found {
		t.Skip("the Dockerfile runs no `go mod download`")
	}
}

// TestDeployedFlagsAreRunFlags checks every flag the k8s StatefulSet, the
// systemd unit and the example config file pass to `circuitmesh run`, and
// every CIRCUITMESH_* variable the Dockerfile and the StatefulSet set,
// against the flags `circuitmesh run --help` lists.
func TestDeployedFlagsAreRunFlags(t *testing.T) {
	flags, envs := runFlags(t)
	check := func(where, flag string) {
		t.Helper()
		if !flags[flag] {
			t.Errorf("%s passes --%s, which `circuitmesh run` does not have", where, flag)
		}
	}
	argFlag := regexp.MustCompile(`^--([a-z0-9-]+)`)

	// k8s: the container's args.
	raw, err := os.ReadFile("k8s/circuitmesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The args: block is a list of "- ARG" lines, comments between them;
	// the env: block's "- name: NAME" lines follow it.
	containers := 0
	in := ""
	itemRE := regexp.MustCompile(`^\s*-\s+(\S.*)$`)
	envRE := regexp.MustCompile(`^\s*-\s+name:\s*(\S+)`)
	keyRE := regexp.MustCompile(`^\s*([a-zA-Z]+):\s*$`)
	var args []string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if m := keyRE.FindStringSubmatch(line); m != nil {
			in = m[1]
			if in == "args" {
				containers++
			}
			continue
		}
		switch in {
		case "args":
			if m := itemRE.FindStringSubmatch(line); m != nil {
				args = append(args, strings.TrimSpace(m[1]))
			}
		case "env":
			if m := envRE.FindStringSubmatch(line); m != nil && strings.HasPrefix(m[1], "CIRCUITMESH_") && !envs[m[1]] {
				t.Errorf("deploy/k8s/circuitmesh.yaml sets %s, which `circuitmesh run` does not read", m[1])
			}
		}
	}
	if len(args) == 0 || args[0] != "run" {
		t.Errorf("k8s container args %v do not start with run", args)
	} else {
		for _, a := range args[1:] {
			m := argFlag.FindStringSubmatch(a)
			if m == nil {
				t.Errorf("k8s arg %q is not a flag", a)
				continue
			}
			check("deploy/k8s/circuitmesh.yaml", m[1])
		}
	}
	if containers == 0 {
		t.Error("no container found in deploy/k8s/circuitmesh.yaml")
	}

	// systemd: ExecStart.
	unit, err := os.ReadFile("systemd/circuitmesh.service")
	if err != nil {
		t.Fatal(err)
	}
	execStart := regexp.MustCompile(`(?m)^ExecStart=(\S+)\s+run\s+(.*)$`).FindStringSubmatch(string(unit))
	if execStart == nil {
		t.Fatal("no ExecStart=... run in the unit")
	}
	for _, a := range strings.Fields(execStart[2]) {
		if m := argFlag.FindStringSubmatch(a); m != nil {
			check("deploy/systemd/circuitmesh.service", m[1])
		}
	}

	// The example config file, commented-out lines included.
	conf, err := os.Open("systemd/circuitmesh.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer conf.Close()
	confRE := regexp.MustCompile(`^#?\s*([a-z][a-z0-9-]*)\s*=\s*\S`)
	sc := bufio.NewScanner(conf)
	for sc.Scan() {
		if m := confRE.FindStringSubmatch(sc.Text()); m != nil {
			check("deploy/systemd/circuitmesh.conf", m[1])
		}
	}

	// The Dockerfile's ENV.
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\b(CIRCUITMESH_[A-Z0-9_]+)=`).FindAllStringSubmatch(string(df), -1) {
		if !envs[m[1]] {
			t.Errorf("deploy/Dockerfile sets %s, which `circuitmesh run` does not read", m[1])
		}
	}
}

// serviceUID stands for the dynamic user systemd gives the unit
// (DynamicUser=yes): neither root nor the operator.
const serviceUID = 61000

// asServiceUser starts the binary as serviceUID, as the unit runs it.
func asServiceUser(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: serviceUID, Gid: serviceUID}}
	return cmd
}

// serviceStateDir makes a state directory the way the unit has one on
// its first start: the identity made by root with `circuitmesh init`,
// then handed to the dynamic user (systemd chowns StateDirectory= to it).
func serviceStateDir(t *testing.T, bin string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the unit's dynamic user is another uid than the operator's")
	}
	unit, err := os.ReadFile("systemd/circuitmesh.service")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^DynamicUser=yes`).Match(unit) {
		t.Skip("the unit does not run as a dynamic user")
	}
	root := t.TempDir()
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) { // traversable by the service user
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o005); err != nil {
				t.Fatal(err)
			}
		}
	}
	state := filepath.Join(root, "state")
	if out, err := exec.Command(bin, "init", "--name", "n1", "--data-dir", state).CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	err = filepath.Walk(state, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, serviceUID, serviceUID)
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// TestSystemdRootCanUseAdminSocket: the unit's header says that, once it
// runs, `circuitmesh status` works "as root: the admin socket is
// /var/lib/circuitmesh/admin.sock". The unit runs the daemon as a dynamic
// user; this starts it as another uid than root the same way and runs
// `circuitmesh status`, `peers` and `reload` as root against its socket.
// Before, the CLI refused a socket served by a user other than root and
// its own (admin.ErrUntrustedSocket), the state directory's owner too.
func TestSystemdRootCanUseAdminSocket(t *testing.T) {
	bin := binary(t)
	state := serviceStateDir(t, bin)
	startService(t, bin, state)
	for _, cmd := range []string{"status", "peers", "reload"} {
		out, err := exec.Command(bin, cmd, "--data-dir", state).CombinedOutput()
		if err != nil {
			t.Errorf("as root, `circuitmesh %s` against the service's socket: %v\n%s", cmd, err, out)
		}
	}
}

// TestSystemdGossipKeyRecipeIsReadable follows deploy/systemd/circuitmesh.conf:
// the gossip key made as root with the recipe its comment gives, in the
// state directory of a unit that already ran, then the daemon started
// with gossip-key-file pointing at it, as the unit's dynamic user: it
// comes up. Before, the recipe left a file of root's, mode 0600:
// "--gossip-key-file: open .../gossip.key: permission denied", and the
// unit would not start.
func TestSystemdGossipKeyRecipeIsReadable(t *testing.T) {
	bin := binary(t)
	state := serviceStateDir(t, bin)
	key := filepath.Join(state, "gossip.key")
	recipe := confRecipe(t, "made once as root with")
	recipe = strings.ReplaceAll(recipe, "/var/lib/circuitmesh", state)
	if out, err := exec.Command("sh", "-c", recipe).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", recipe, err, out)
	}
	startService(t, bin, state, "--gossip", "127.0.0.1:0", "--gossip-key-file", key)
}

// startService starts `circuitmesh run` on state as the unit's user, with
// args, and waits until it is up (its admin socket listens); it fails the
// test, with the daemon's output, if the daemon exits first. The test's
// cleanup stops it.
func startService(t *testing.T, bin, state string, args ...string) {
	t.Helper()
	d := asServiceUser(context.Background(), bin, append([]string{"run", "--data-dir", state, "--listen", "127.0.0.1:0"}, args...)...)
	// The daemon writes its output to a file the test reads when it fails.
	logf, err := os.Create(filepath.Join(t.TempDir(), "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.Stdout, d.Stderr = logf, logf
	output := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	t.Cleanup(func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = d.Process.Kill()
			<-exited
		}
	})
	sock := filepath.Join(state, "admin.sock")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("the daemon, as the unit's user, exited at start (%v):\n%s", err, output())
		default:
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's admin socket does not answer after 30 s; its output:\n%s", output())
		}
	}
}

// confRecipe returns the commands deploy/systemd/circuitmesh.conf gives
// after the comment line that ends with intro: the comment lines indented
// by three spaces that follow it, one command a line.
func confRecipe(t *testing.T, intro string) string {
	t.Helper()
	conf, err := os.ReadFile("systemd/circuitmesh.conf")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in := false
	for _, line := range strings.Split(string(conf), "\n") {
		switch {
		case strings.HasSuffix(line, intro):
			in = true
		case in && strings.HasPrefix(line, "#   "):
			cmds = append(cmds, strings.TrimPrefix(line, "#   "))
		case in:
			in = false
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("no commands after %q in deploy/systemd/circuitmesh.conf", intro)
	}
	return strings.Join(cmds, "\n")
}
