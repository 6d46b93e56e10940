package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/circuitmesh/circuitmesh/node"
)

// Three daemons gossiping under one key rotate to a new one with `keys`,
// node by node as docs/SECURITY.md says; afterwards a daemon that knows
// only the new key finds the mesh by gossip alone.
func TestE2EGossipKeyRotationWithTheCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemons")
	}
	l := newLab(t, "e2e")
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	for i := range newKey {
		oldKey[i], newKey[i] = byte(i), byte(100+i)
	}
	oldFile, newFile := filepath.Join(l.dir, "old.key"), filepath.Join(l.dir, "new.key")
	for f, k := range map[string][]byte{oldFile: oldKey, newFile: newKey} {
		if err := os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := l.start("a", "", "--gossip", "127.0.0.1:0", "--gossip-key-file", oldFile)
	ga := a.gossipAddr(t)
	b := l.start("b", "", "--gossip", "127.0.0.1:0", "--join", ga, "--gossip-key-file", oldFile)
	c := l.start("c", "", "--gossip", "127.0.0.1:0", "--join", ga, "--gossip-key-file", oldFile)
	all := []*daemon{a, b, c}
	for _, d := range all {
		for _, p := range all {
			if p != d {
				d.waitRoute(t, p.name, anyRoute)
			}
		}
	}
	oldFP, newFP := node.KeyFingerprint(oldKey), node.KeyFingerprint(newKey)
	if out := a.cli("keys", "list"); strings.TrimSpace(out) != oldFP+"  primary" {
		t.Fatalf("keys list before: %q", out)
	}
	for _, step := range []struct{ op, file string }{{"install", newFile}, {"use", newFile}, {"remove", oldFile}} {
		for _, d := range all {
			d.cli("keys", step.op, "--key-file", step.file)
		}
	}
	for _, d := range all {
		if out := d.cli("keys", "list"); strings.TrimSpace(out) != newFP+"  primary" {
			t.Fatalf("keys list on %s after the rotation: %q", d.name, out)
		}
	}
	// The key comes from stdin too, and the primary key cannot be removed.
	rm := exec.Command(l.bin, "keys", "remove", "--data-dir", a.dir)
	rm.Stdin = strings.NewReader(base64.StdEncoding.EncodeToString(newKey))
	if out, err := rm.CombinedOutput(); err == nil || !strings.Contains(string(out), "primary") {
		t.Fatalf("removing the primary key: %v\n%s", err, out)
	}
	if out, err := l.try("keys", "install", base64.StdEncoding.EncodeToString(newKey), "--data-dir", a.dir); err == nil || !strings.Contains(out, "never the command line") ||
		strings.Contains(out, base64.StdEncoding.EncodeToString(newKey)) {
		t.Fatalf("a key on the command line (refused, and not echoed): %v\n%s", err, out)
	}
	// Gossip runs on the new key: a newcomer with only that key is found
	// and linked without any static link.
	x := l.start("x", "", "--gossip", "127.0.0.1:0", "--join", ga, "--gossip-key-file", newFile)
	x.waitRoute(t, "c", anyRoute)
	a.waitRoute(t, "x", anyRoute)
}

// TestKeysOnANodeWithoutAKeyringExitOne: `keys` on a daemon that runs
// without gossip, or gossips without a key, has a valid command line the
// daemon cannot carry out (README: exit status 2 is a bad command line, 1
// any other failure). It exited 2 with "bad request", so a script read
// it as its own mistake; now 1, saying why.
func TestKeysOnANodeWithoutAKeyringExitOne(t *testing.T) {
	l := newLab(t, "e2e")
	keyFile := filepath.Join(l.dir, "k.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d    *daemon
		says string
	}{
		{l.start("a", ""), "gossip is off"},
		{l.start("b", "", "--gossip", "127.0.0.1:0"), "gossip is not encrypted"},
	} {
		for _, args := range [][]string{{"keys", "list"}, {"keys", "install", "--key-file", keyFile}} {
			code, out := l.exitCode(append(args, "--data-dir", tc.d.dir)...)
			if code != 1 || !strings.Contains(out, tc.says) || strings.Contains(out, "bad request") {
				t.Errorf("%v on %s: exit status %d, want 1 saying %q (the command line is fine):\n%s", args, tc.d.name, code, tc.says, out)
			}
		}
	}
}
