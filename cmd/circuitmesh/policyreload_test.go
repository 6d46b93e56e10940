package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/node"
	"github.com/circuitmesh/circuitmesh/node/policy"
)

// TestConcurrentReloadsKeepThePolicyReadLast: a reload (SIGHUP) reads the
// policy file, the operator then edits it and runs `circuitmesh reload`
// while the first reload has not applied what it read yet. The policy in
// force must be the edited one. Before, nothing serialized reloads: the
// second applied the new policy, then the first the old one it had read.
func TestConcurrentReloadsKeepThePolicyReadLast(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy")
	write := func(rule string) {
		if err := os.WriteFile(file, []byte(rule+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("allow dial from=old service=echo")
	n, err := node.New(node.Config{Name: "a", Mesh: "test", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d := daemonNode{Node: n, policy: policySource{file: file}, reload: new(sync.Mutex)}

	paused, resume := make(chan struct{}), make(chan struct{})
	var reads atomic.Int32
	policyRead = func() {
		if reads.Add(1) == 1 { // the first reload only
			close(paused)
			<-resume
		}
	}
	defer func() { policyRead = nil }()
	first := make(chan error, 1)
	go func() { first <- d.ReloadIdentity() }()
	<-paused // the first reload read the old policy
	write("allow dial from=new service=echo")
	second := make(chan error, 1)
	go func() { second <- d.ReloadIdentity() }()
	// Let the second reload run as far as it can while the first is held
	// (through, if nothing holds it back).
	select {
	case err := <-second:
		second <- err
	case <-time.After(2 * time.Second):
	}
	close(resume)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	rules := n.Policy().Rules()
	if len(rules) != 1 || rules[0].Text != "allow dial from=new service=echo" {
		t.Fatalf("policy in force after two reloads at once: %v, want the rule read last (allow dial from=new service=echo)", rules)
	}
	if dec := n.Policy().Dial(policy.Subject{Name: "new"}, "echo"); !dec.Allowed {
		t.Fatalf("new may not dial echo: %s", dec.Reason)
	}
}

// TestReloadKeepsRulesOverAnEmptyPolicyFile: reloading a --policy-file
// that has no rules (emptied, or cut short while being rewritten in
// place) while a policy is in force would allow every circuit. The reload
// is refused with an error saying how to allow everything on purpose, and
// the rules in force stay. Without a policy in force, an empty file is
// taken as before (it changes nothing). Rules that allow everything are
// taken.
func TestReloadKeepsRulesOverAnEmptyPolicyFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := node.New(node.Config{Name: "a", Mesh: "test", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	d := daemonNode{Node: n, policy: policySource{file: file}, reload: new(sync.Mutex)}
	write("# nothing yet\n")
	if err := d.ReloadIdentity(); err != nil {
		t.Fatalf("empty file with no policy in force: %v", err)
	}
	write("allow dial from=ops service=echo\n")
	if err := d.ReloadIdentity(); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"", "# rewritten\n", "\n\n"} {
		write(text)
		err := d.ReloadIdentity()
		if err == nil || !strings.Contains(err.Error(), file+" has no rules; keeping the 1 rules in force") ||
			!strings.Contains(err.Error(), "without --policy-file") || !strings.Contains(err.Error(), "mv") {
			t.Fatalf("reload of %q: %v; want it refused, saying how to allow everything", text, err)
		}
		if dec := n.Policy().Dial(policy.Subject{Name: "mallory"}, "echo"); dec.Allowed {
			t.Fatalf("after reloading %q, mallory may dial echo: %s", text, dec.Reason)
		}
	}
	write("allow dial\nallow relay\n")
	if err := d.ReloadIdentity(); err != nil {
		t.Fatalf("rules allowing everything: %v", err)
	}
	if dec := n.Policy().Dial(policy.Subject{Name: "mallory"}, "echo"); !dec.Allowed {
		t.Fatalf("after allowing everything, mallory may not dial echo: %s", dec.Reason)
	}
}
