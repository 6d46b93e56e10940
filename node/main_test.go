package node

import (
	"flag"
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

// parallelTests is how many tests run at once among those that call
// t.Parallel, unless -test.parallel says otherwise. They are tests of
// circuits and links that mostly wait (silent relays, stalled readers,
// refused retries: a quarter of their time or less on the CPU, under the
// race detector) and change no package-level state, nor measure the
// process's CPU, heap or goroutines; they run once the others have run.
// Tests of gossip and of the discovery policy stay serial: what they
// assert depends on how fast a whole mesh converges.
const parallelTests = 4

func TestMain(m *testing.M) {
	if target := os.Getenv(floodTargetEnv); target != "" {
		os.Exit(runBadHandshakes(target))
	}
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		flag.Set("test.parallel", strconv.Itoa(parallelTests))
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
