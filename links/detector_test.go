package links

import (
	"testing"
	"time"
)

// TestGapDetectorAdapts feeds synthetic arrival times: regular 100 ms gaps
// keep the floor; one 1.5 s stall raises the allowance above it, so the
// next stall of that size is tolerated; regular traffic brings it back.
func TestGapDetectorAdapts(t *testing.T) {
	const floor = 800 * time.Millisecond
	var d gapDetector
	now := time.Unix(1000, 0)
	regular := func(n int) {
		for range n {
			now = now.Add(100 * time.Millisecond)
			d.observe(now)
		}
	}
	regular(100)
	if a := d.allowance(floor); a != floor {
		t.Fatalf("quiet link: allowance %v, want the floor %v", a, floor)
	}
	now = now.Add(1500 * time.Millisecond) // the peer was descheduled
	d.observe(now)
	regular(20)
	if a := d.allowance(floor); a <= 1500*time.Millisecond {
		t.Fatalf("after a 1.5 s stall: allowance %v, want more than 1.5 s", a)
	}
	if a := d.allowance(floor); a > detectorCap*floor {
		t.Fatalf("allowance %v above the cap", a)
	}
	regular(5000)
	if a := d.allowance(floor); a != floor {
		t.Fatalf("after 500 s of regular traffic: allowance %v, want the floor", a)
	}
	// Out-of-order or repeated times change nothing.
	d.observe(now.Add(-time.Second))
	d.observe(now)
	if a := d.allowance(floor); a != floor {
		t.Fatalf("allowance %v after stale samples", a)
	}
}
