package main

import (
	"os"
	"path/filepath"
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
