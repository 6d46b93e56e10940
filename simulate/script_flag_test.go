package simulate

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
)

// Flags of TestVirtualScript: run any scenario in virtual time from the
// command line, as `circuitmesh simulate` runs it in real time:
//
//	go test ./simulate -run TestVirtualScript -v -args -sim.script=$PWD/my.sim -sim.backend=mem
var (
	flagScript   = flag.String("sim.script", "", "scenario `FILE` for TestVirtualScript (an absolute path: go test runs in the package directory); default: the built-in diamond demo on both backends")
	flagBackend  = flag.String("sim.backend", "", "`BACKEND` of -sim.script: quic (default) or mem")
	flagSeed     = flag.Uint64("sim.seed", 1, "`SEED` of packet loss for -sim.script")
	flagProgress = flag.Bool("sim.progress", false, "print each step of TestVirtualScript on stderr as it finishes")
	flagJSON     = flag.Bool("sim.json", false, "print TestVirtualScript's report as JSON on stdout instead of a table in the test log")
	flagHeap     = flag.String("sim.heapprofile", "", "write a heap profile to `FILE` after the last step of TestVirtualScript, before the teardown")
	flagUnorder  = flag.Bool("sim.unordered", false, "on mem, handle the links' events in parallel (Config.Unordered): less CPU, runs do not repeat")
)

// writeHeapProfile writes the live heap to file after a collection.
func writeHeapProfile(t *testing.T, file string) {
	f, err := os.Create(file)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Error(err)
	}
}

// TestVirtualScript runs a scenario in virtual time and prints its report:
// the built-in diamond demo on both backends, or the scenario -sim.script
// names.
func TestVirtualScript(t *testing.T) {
	name, src := DefaultScriptName, DefaultScript
	backends := []Backend{BackendMem, BackendQUIC}
	if *flagScript != "" {
		b, err := os.ReadFile(*flagScript)
		if err != nil {
			t.Fatal(err)
		}
		name, src = filepath.Base(*flagScript), string(b)
		backends = []Backend{Backend(*flagBackend)}
	}
	s, err := Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range backends {
		t.Run(string(backend), func(t *testing.T) {
			var progress io.Writer
			if *flagProgress {
				progress = os.Stderr
			}
			o := runOptions{progress: progress}
			if *flagHeap != "" {
				o.last = func(*Cluster) { writeHeapProfile(t, *flagHeap) }
			}
			rep := testRun(t, s, Config{Backend: backend, Seed: *flagSeed, Unordered: *flagUnorder}, o)
			if *flagJSON {
				if err := rep.WriteJSON(os.Stdout); err != nil {
					t.Fatal(err)
				}
				return
			}
			if testing.Verbose() {
				rep.WriteTable(t.Output())
			}
		})
	}
}
