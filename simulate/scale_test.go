package simulate

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// scaleScript is the scenario of testdata/scale-1000.sim for n nodes: a
// random sparse graph of degree 3.5, converge, two crashes, re-converge, a
// workload of verified circuits.
func scaleScript(n int) string {
	return fmt.Sprintf(`nodes n1..n%d
random edges=%d seed=1
wait converged timeout=10m
kill n10 n%d
wait converged timeout=10m
workload circuits=200 size=16KiB seed=2
`, n, n*7/4, n/2)
}

// runScale runs a scale scenario in virtual time on mem and checks what a
// user of it relies on: every step passes (the mesh converges before and
// after the crashes) and every circuit of the workload is verified. The
// figures (wall, virtual, heap) are logged, not asserted.
func runScale(t *testing.T, name, src string) {
	s, err := Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	rep := testRun(t, s, Config{Backend: BackendMem}, runOptions{})
	requireOK(t, rep)
	var w *WorkloadResult
	for _, st := range rep.Steps {
		if st.Workload != nil {
			w = st.Workload
		}
	}
	if w == nil || w.Circuits == 0 || w.Succeeded != w.Circuits {
		t.Fatalf("workload: %+v, want every circuit verified", w)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%s: %s virtual, %s wall, teardown %s wall; %d circuits verified; process memory from the OS %d MiB",
		name, rep.Duration, rep.Wall, rep.TeardownWall, w.Succeeded, after.Sys>>20)
}

// TestScaleSmall runs the scale scenario on 100 nodes (in the quick suite; its seeded graph stays connected after the two crashes).
func TestScaleSmall(t *testing.T) {
	runScale(t, "scale-100", scaleScript(100))
}

// TestScale1000 runs testdata/scale-1000.sim: 1000 nodes, 1750 links, in
// virtual time on mem. It needs about 45 s of CPU and 1.7 GB of memory
// without the race detector (no soft memory limit in tests).
func TestScale1000(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 nodes take about 45 s of CPU and 1.7 GB of memory; run without -short")
	}
	if raceOn {
		t.Skip("1000 nodes under the race detector need 5–10 times the memory of a plain run (1.7 GB); run without -race")
	}
	src, err := os.ReadFile(filepath.Join("testdata", "scale-1000.sim"))
	if err != nil {
		t.Fatal(err)
	}
	runScale(t, "scale-1000.sim", string(src))
}
