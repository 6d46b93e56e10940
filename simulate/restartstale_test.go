package simulate

import (
	"fmt"
	"testing"
)

// TestRestartedNeighboursOldRoutesWithdrawn: b is killed and restarted
// at once; it redials c, and c takes the new link in place of the old one
// before it found the old one dead. The routes c learned through b's old
// instance are withdrawn then, as a dead link's are: c must not keep a
// route to a, which only b could reach and which the restarted b does
// not reach (a unlinked it). Before, c kept it for about 14 s, until it
// expired, in about 1 run in 7 on the QUIC backend in virtual time; the
// test runs the scenario up to 80 times (a few seconds in all).
func TestRestartedNeighboursOldRoutesWithdrawn(t *testing.T) {
	s, err := Parse("restart.sim", `nodes a b c
link a-b b-c
wait converged
kill b
unlink a-b
restart b
expect unreachable c a within=4s
`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 80 {
		var rep *Report
		t.Run(fmt.Sprint(i), func(t *testing.T) { rep = Test(t, s, Config{Backend: BackendQUIC}) })
		if rep == nil {
			t.Fatal("no report")
		}
		if !rep.OK() {
			last := rep.Steps[len(rep.Steps)-1]
			t.Fatalf("run %d: line %d %q: %s %s\n%s", i+1, last.Line, last.Step, last.Status, last.Error, last.State)
		}
	}
}
