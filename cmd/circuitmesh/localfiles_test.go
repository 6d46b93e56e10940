package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/circuitmesh/circuitmesh/node"
)

// TestInitRefusesACAAnotherUserMadeFirst: `init` without --ca-dir uses
// <parent of data-dir>/<mesh>-ca. In a directory every user may write to
// (/tmp), another user can make that directory first, with a CA of theirs
// in it, and would then issue certificates the victim's nodes trust; or
// empty and open to all, to read or swap the CA init writes there. Both
// are refused, naming the directory, its owner and mode, and nothing is
// issued.
func TestInitRefusesACAAnotherUserMadeFirst(t *testing.T) {
	lab := t.TempDir()
	if err := os.Chmod(lab, 0o1777); err != nil { // like /tmp
		t.Fatal(err)
	}
	planted := filepath.Join(lab, node.DefaultMesh+"-ca")
	init := func(name, want string) {
		t.Helper()
		code, out, stderr := cm(t, "init", "--name", name, "--data-dir", filepath.Join(lab, name))
		if code == 0 || !strings.Contains(stderr, planted) || !strings.Contains(stderr, want) {
			t.Fatalf("init %s with a CA directory made by another user: exit %d, %q %q; want a refusal naming %s and %q",
				name, code, out, stderr, planted, want)
		}
		if _, err := os.Stat(filepath.Join(lab, name, "node.key")); err == nil {
			t.Fatalf("refused init of %s still issued a key", name)
		}
	}

	// Made first, empty and open to all.
	if err := os.Mkdir(planted, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(planted, 0o777); err != nil {
		t.Fatal(err)
	}
	init("a", "chmod go-w "+planted)

	// Made first by another user, with their CA in it.
	if os.Geteuid() != 0 {
		t.Skip("CANNOT RUN the rest: giving the CA directory to another user needs root")
	}
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cm(t, "ca", "init", "--dir", planted); code != 0 {
		t.Fatalf("ca init: %s", stderr)
	}
	if out, err := exec.Command("chown", "-R", "65534:65534", planted).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	init("b", "uid 65534")
}

// TestSecretFilesOpenToOthersAreRefused: like ssh with a private key, the
// daemon does not start with node.key, --gossip-key-file or a config file
// holding gossip-key that group or others may read or write, nor `keys`
// take such a --key-file; each refusal names the file, its mode and the
// chmod that fixes it, and the same files at 0600 are taken.
func TestSecretFilesOpenToOthersAreRefused(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "a")
	if code, _, stderr := cm(t, "init", "--name", "a", "--data-dir", data); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	nodeKey := filepath.Join(data, "node.key")
	gossipKey := writeFile(t, dir, "gossip.key", "MDEyMzQ1Njc4OWFiY2RlZg==\n")
	conf := writeFile(t, dir, "node.conf", "gossip = 127.0.0.1:7946\ngossip-key = MDEyMzQ1Njc4OWFiY2RlZg==\n")
	for _, c := range []struct {
		file string
		try  func() string // the error or stderr
	}{
		{nodeKey, func() string {
			_, err := parseRun(t, "--data-dir", data)
			return errText(err)
		}},
		{gossipKey, func() string {
			_, err := parseRun(t, "--insecure", "--name", "a", "--data-dir", dir, "--gossip", "127.0.0.1:7946", "--gossip-key-file", gossipKey)
			return errText(err)
		}},
		{conf, func() string {
			_, err := parseRun(t, "--insecure", "--name", "a", "--data-dir", dir, "--config", conf)
			return errText(err)
		}},
		{gossipKey, func() string {
			// No daemon runs: a key that is taken fails at the socket.
			_, _, stderr := cm(t, "keys", "install", "--key-file", gossipKey, "--admin", filepath.Join(dir, "none.sock"))
			return stderr
		}},
	} {
		for _, mode := range []os.FileMode{0o644, 0o660} {
			if err := os.Chmod(c.file, mode); err != nil {
				t.Fatal(err)
			}
			got := c.try()
			want := "chmod go-rwx " + c.file
			if !strings.Contains(got, want) || !strings.Contains(got, fmt.Sprintf("mode %04o", mode)) {
				t.Fatalf("%s at %04o: %q; want a refusal naming the mode and %q", c.file, mode, got, want)
			}
		}
		if err := os.Chmod(c.file, 0o600); err != nil {
			t.Fatal(err)
		}
		if got := c.try(); strings.Contains(got, "refusing") {
			t.Fatalf("%s at 0600 refused: %s", c.file, got)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
