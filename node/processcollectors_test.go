package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestNodesShareProcessCollectors: two nodes of one process export the Go
// runtime, process and build metrics each, from the same collectors.
func TestNodesShareProcessCollectors(t *testing.T) {
	c := newCluster(t, false)
	a, b := c.add("a"), c.add("b")
	for _, n := range []*Node{a, b} {
		fams, err := n.metrics.reg.Gather()
		if err != nil {
			t.Fatalf("gather the metrics of %s: %v", n.Name(), err)
		}
		want := map[string]bool{"go_goroutines": false, "circuitmesh_build_info": false}
		process := false
		for _, f := range fams {
			if _, ok := want[f.GetName()]; ok {
				want[f.GetName()] = true
			}
			process = process || strings.HasPrefix(f.GetName(), "process_")
		}
		for name, seen := range want {
			if !seen {
				t.Errorf("%s does not export %s", n.Name(), name)
			}
		}
		if !process {
			t.Errorf("%s exports no process_ metric", n.Name())
		}
	}
	// Each node's registry holds the shared collectors themselves:
	// registering one again is refused as already there, with that very
	// collector (one created per node would be a different one).
	for _, n := range []*Node{a, b} {
		for i, col := range processCollectors() {
			err := n.metrics.reg.Register(col)
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) || are.ExistingCollector != col {
				t.Fatalf("%s: process collector %d is not the shared one (registering it again: %v)", n.Name(), i, err)
			}
		}
	}
}
