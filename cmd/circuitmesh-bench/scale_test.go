package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestScaleCountLeavesMemory checks that the scale part holds fewer
// circuits than asked rather than take the machine below minAvailable.
func TestScaleCountLeavesMemory(t *testing.T) {
	const want = 100000
	if got := scaleCount(want, 64<<30); got != want {
		t.Errorf("64 GiB available: %d circuits, want all %d", got, want)
	}
	avail := uint64(minAvailable + 1000*scaleBytesEstimate)
	if got := scaleCount(want, avail); got != 1000 {
		t.Errorf("room for 1000 circuits above the reserve: got %d", got)
	}
	if got := scaleCount(want, minAvailable/2); got != 0 {
		t.Errorf("below the reserve: got %d circuits, want 0", got)
	}
}

// TestScalePartReportsPerCircuitFigures runs the scale part on a small
// count and checks its figures and table lines.
func TestScalePartReportsPerCircuitFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes and holds a thousand circuits; skipped with -short")
	}
	s := &suite{o: options{Scale: minScale, Only: "scale"}, res: &results{Parts: []string{partScale}}}
	if err := s.scale(); err != nil {
		t.Fatal(err)
	}
	r := s.res.Scale
	if r == nil || r.Circuits != minScale || r.Extrapolated {
		t.Fatalf("scale result %+v, want %d circuits held", r, minScale)
	}
	if r.BytesPerCircuit <= 0 || r.GoroutinesPerCircuit < 1 {
		t.Errorf("relay per circuit: %.0f bytes, %.2f goroutines; want the held circuits counted", r.BytesPerCircuit, r.GoroutinesPerCircuit)
	}
	if r.OpensPerRelayCPUS["circuit"] <= 0 || r.OpensPerRelayCPUS["naive"] <= 0 || r.OpenRateVsNaive <= 0 {
		t.Errorf("open rates missing: %+v, ratio %v", r.OpensPerRelayCPUS, r.OpenRateVsNaive)
	}
	path := filepath.Join(t.TempDir(), "bench-results.json")
	if err := s.res.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	s.res.printTable(&table)
	for _, want := range []string{"scale: rss_bytes_per_circuit_at_relay (1000 idle)", "scale: open_rate_vs_naive"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}
