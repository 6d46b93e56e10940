package simulate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// deterministicRun runs s in virtual time and returns its report without
// the wall times (JSON), every node's event log and every node's routing
// table, as text.
func deterministicRun(t *testing.T, s *Script, cfg Config) (report, events, routes string) {
	t.Helper()
	var ev, rt strings.Builder
	rep := testRun(t, s, cfg, runOptions{last: func(c *Cluster) {
		for _, name := range c.Names() {
			evs, err := c.Events(name)
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range evs {
				fmt.Fprintf(&ev, "%s %s %s %s %s\n", e.Time.Format("15:04:05.000000000"), e.Node, e.Kind, e.Peer, e.Err)
			}
			peers, err := c.Peers(name)
			if err != nil {
				continue // a node that is down
			}
			for _, p := range peers {
				fmt.Fprintf(&rt, "%s %s %v %s %d %d\n", name, p.Name, p.Reachable, p.NextHop, p.Hops, p.Cost)
			}
		}
	}})
	rep.Wall, rep.TeardownWall = 0, 0
	for i := range rep.Steps {
		rep.Steps[i].Wall = 0
	}
	var b bytes.Buffer
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	return b.String(), ev.String(), rt.String()
}

// firstDiff describes the first line where a and b differ (each line cut
// to 300 bytes).
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	cut := func(s string) string {
		if len(s) > 300 {
			return s[:300] + "…"
		}
		return s
	}
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: %q vs %q", i+1, cut(al[i]), cut(bl[i]))
		}
	}
	return fmt.Sprintf("%d lines vs %d lines", len(al), len(bl))
}

func determinismScript(t *testing.T, nodes int, loss bool) *Script {
	t.Helper()
	params := ""
	if loss {
		params = " latency=2ms loss=0.02"
	}
	src := fmt.Sprintf(`nodes n1..n%[1]d
random edges=%[2]d seed=3%[3]s
wait converged timeout=60s
transfer n1 n%[1]d 256KiB
kill n2 n3
wait converged timeout=60s
transfer n%[1]d n1 64KiB
restart n2
wait converged timeout=60s
expect route n1 n2
wait 10s
transfer n2 n%[1]d 64KiB
workload circuits=50 size=4KiB seed=4
`, nodes, nodes*7/4, params)
	s, err := Parse("determinism.sim", src)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The same script and seed in virtual time, five times, on 100 nodes
// with 2 ms links losing 2 % of their packets, two crashes, a restart,
// transfers and a workload of concurrent circuits: on the mem backend the
// report (but its wall-clock times), every node's event log and every
// node's routing table are byte-identical from run to run; the first
// differing line is printed if not. On QUIC only the outcome of every step
// repeats (docs/SIMULATE.md, Determinism, says why); the runs that differ
// are logged with their first difference.
func TestVirtualRunsRepeat(t *testing.T) {
	nodes, backends := 100, []Backend{BackendMem, BackendQUIC}
	if testing.Short() {
		nodes, backends = 30, []Backend{BackendMem}
	}
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			n := nodes
			if backend == BackendQUIC {
				n = min(n, 30)
			}
			s := determinismScript(t, n, true)
			outcome := func(report string) string {
				var rep Report
				if err := json.Unmarshal([]byte(report), &rep); err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				for _, st := range rep.Steps {
					fmt.Fprintf(&b, "%d %s %s %s\n", st.Line, st.Status, st.Step, st.Error)
				}
				return b.String()
			}
			rep0, ev0, rt0 := deterministicRun(t, s, Config{Backend: backend, Seed: 5})
			want := outcome(rep0)
			for i := 1; i < 5; i++ {
				rep, ev, rt := deterministicRun(t, s, Config{Backend: backend, Seed: 5})
				if got := outcome(rep); got != want {
					t.Errorf("run %d of the same script and seed: step outcomes differ:\n%s\nfirst run:\n%s", i+1, got, want)
				}
				for _, d := range []struct{ what, a, b string }{{"report", rep0, rep}, {"event log", ev0, ev}, {"routing tables", rt0, rt}} {
					switch {
					case d.a == d.b:
					case backend == BackendMem:
						t.Errorf("run %d: %s differs from run 1 at %s", i+1, d.what, firstDiff(d.a, d.b))
					default:
						t.Logf("run %d: %s differs from run 1 at %s", i+1, d.what, firstDiff(d.a, d.b))
					}
				}
			}
			if backend == BackendMem && (len(ev0) == 0 || len(rt0) == 0) {
				t.Fatalf("nothing to compare: %d bytes of event log, %d of routing tables", len(ev0), len(rt0))
			}
		})
	}
}
