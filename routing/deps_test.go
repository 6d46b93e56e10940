package routing_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoForbiddenImports keeps the engine pure: no transport, gossip,
// telemetry or link packages may be reachable from it.
func TestNoForbiddenImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/circuitmesh/circuitmesh/routing").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 5 {
		t.Fatalf("go list returned too little to judge: %q", deps)
	}
	forbidden := []string{
		"github.com/quic-go/",
		"github.com/hashicorp/memberlist",
		"go.opentelemetry.io/",
		"github.com/circuitmesh/circuitmesh/links",
		"net", // no network I/O
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("routing depends on %s (forbidden: %s)", d, f)
			}
		}
	}
}
