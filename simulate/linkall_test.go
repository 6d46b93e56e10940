package simulate

import (
	"testing"
	"time"
)

// The links of one step come up in parallel: twenty links of a 10 ms
// round trip take about one handshake of virtual time, not twenty.
func TestLinksComeUpInParallel(t *testing.T) {
	s, err := Parse("parallel-links.sim", "nodes n1..n21\nlink n1-n2 n1-n3 n1-n4 n1-n5 n1-n6 n1-n7 n1-n8 n1-n9 n1-n10 n1-n11 n1-n12 n1-n13 n1-n14 n1-n15 n1-n16 n1-n17 n1-n18 n1-n19 n1-n20 n1-n21 latency=5ms\nwait converged\n")
	if err != nil {
		t.Fatal(err)
	}
	rep := Test(t, s, Config{Backend: BackendQUIC})
	link := rep.Steps[1]
	// One after another they would take at least 20 round trips (200ms).
	if link.Elapsed >= 200*time.Millisecond {
		t.Errorf("linking 20 links of 10ms round trip took %v of virtual time, want less than the 200ms of 20 round trips in a row", link.Elapsed)
	}
	t.Logf("%s: %v virtual", link.Step, link.Elapsed)
}
