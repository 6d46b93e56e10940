package simulate

import (
	"strings"
	"testing"
	"time"
)

// A scenario that waits two minutes finishes long before two minutes pass,
// and its report says which clock each figure is on.
func TestVirtualTimeWaitsWithoutSleeping(t *testing.T) {
	for _, backend := range []Backend{BackendMem, BackendQUIC} {
		t.Run(string(backend), func(t *testing.T) {
			s, err := Parse("virtual.sim", `
nodes a b c d
link a-b b-c c-d latency=5ms
wait converged
wait 2m
expect route a d hops=3 via=b within=0s
transfer a d 256KiB
kill b
expect unreachable a d within=30s
restart b
wait converged
`)
			if err != nil {
				t.Fatal(err)
			}
			rep := Test(t, s, Config{Backend: backend})
			if testing.Verbose() {
				rep.WriteTable(t.Output())
			}
			if !rep.Virtual {
				t.Error("report does not say it ran in virtual time")
			}
			if rep.Duration < 2*time.Minute {
				t.Errorf("virtual duration %v, want at least the 2m the script waits", rep.Duration)
			}
			if rep.Wall <= 0 || rep.Wall >= rep.Duration {
				t.Errorf("wall time %v, want between 0 and the virtual %v", rep.Wall, rep.Duration)
			}
			var wait StepResult
			for _, st := range rep.Steps {
				if st.Step == "wait 2m" {
					wait = st
				}
			}
			if wait.Elapsed != 2*time.Minute {
				t.Errorf("wait 2m took %v of virtual time, want exactly 2m", wait.Elapsed)
			}
			var b strings.Builder
			if err := rep.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"in virtual time", "WALL", "virtual ("} {
				if !strings.Contains(b.String(), want) {
					t.Errorf("table lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}
