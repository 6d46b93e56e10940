package main

import (
	"strings"
	"testing"
)

// TestCLITakesEveryServiceNameTheNodeServes: the command line checks a
// service name by the node's rule (circuit.ValidateService), so a service
// an embedded node serves or dials ("grpc.health.v1.Health/Check",
// "svc:8080", "日本語", "a=b") can be exposed and forwarded by the daemon,
// and a name the rule refuses (spaces, ',', more than 63 bytes) is refused
// before anything is published. Before, the CLI took only ASCII letters,
// digits, '.', '_' and '-', and refused all four.
func TestCLITakesEveryServiceNameTheNodeServes(t *testing.T) {
	names := []string{"grpc.health.v1.Health/Check", "svc:8080", "日本語", "a=b"}
	args := []string{"--insecure", "--name", "a"}
	for i, name := range names {
		args = append(args, "--expose", name+"=127.0.0.1:808"+string(rune('0'+i)), "--forward", "900"+string(rune('0'+i))+"=d/"+name)
	}
	d, err := parseRun(t, args...)
	if err != nil {
		t.Fatalf("run %q: %v", args, err)
	}
	if len(d.exposes) != len(names) || len(d.forwards) != len(names) {
		t.Fatalf("run: exposes %v, forwards %v; want %d of each", d.exposes, d.forwards, len(names))
	}
	for i, name := range names {
		if e, f := d.exposes[i], d.forwards[i]; e.service != name || e.target != "127.0.0.1:808"+string(rune('0'+i)) || f.peer != "d" || f.service != name {
			t.Errorf("%q: expose %+v, forward %+v", name, e, f)
		}
	}

	dir := t.TempDir() // no daemon: a command that passes the checks fails with exit 1
	for _, name := range names {
		for _, args := range [][]string{{"expose", name, "127.0.0.1:80"}, {"forward", "127.0.0.1:9001", "d/" + name}} {
			if code, _, stderr := cm(t, append(args, "--data-dir", dir)...); code != 1 || !strings.Contains(stderr, "daemon not running") {
				t.Errorf("%q: exit %d, stderr %q; want the name taken (exit 1, daemon not running)", args, code, stderr)
			}
		}
	}
	for _, name := range []string{"a b", "a,b", "web#1", "*", strings.Repeat("s", 64)} {
		for _, args := range [][]string{{"expose", name, "127.0.0.1:80"}, {"forward", "127.0.0.1:9001", "d/" + name}} {
			if code, _, stderr := cm(t, append(args, "--data-dir", dir)...); code != 2 || !strings.Contains(stderr, "service name") {
				t.Errorf("%.30q: exit %d, stderr %q; want 2 naming the service name", args, code, stderr)
			}
		}
		if _, err := parseRun(t, "--insecure", "--name", "a", "--expose", name+"=127.0.0.1:80"); err == nil {
			t.Errorf("--expose %.30q accepted", name)
		}
	}
}
