package node

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if target := os.Getenv(floodTargetEnv); target != "" {
		os.Exit(runBadHandshakes(target))
	}
	goleak.VerifyTestMain(m, leakIgnores...)
}

// leakIgnores are the goroutines goleak does not count as leaks.
var leakIgnores = []goleak.Option{
	// quic-go and memberlist start package-level helpers once.
	goleak.IgnoreAnyFunction("github.com/hashicorp/go-metrics.(*InmemSink).run"),
	goleak.IgnoreAnyFunction("github.com/armon/go-metrics.(*InmemSink).run"),
	goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
	// A memberlist probe in flight at Shutdown ends on its own timeout
	// (at most the probe interval, 1 s) without watching Shutdown.
	goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
	// So does the wait for an indirect probe's answer it relays for
	// another member (ProbeTimeout): seen left over after a starved
	// 30-node run.
	goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).handleIndirectPing.func2"),
}
