package main

import (
	"strings"
	"testing"
)

func TestDemoRelaysVerifiesAndFailsOver(t *testing.T) {
	// The demo's own 2-minute bound is for an idle machine; 4 MiB took
	// 22 s at 0.2 MiB/s on a starved one. 1 MiB exercises the same steps.
	code, out, stderr := cm(t, "demo", "--size", "1", "--timeout", "6m")
	if code != 0 {
		t.Fatalf("demo exited %d: %s\n%s", code, stderr, out)
	}
	for _, want := range []string{"DESTINATION", "ping e via a → ", "killing relay", "detected the dead relay after"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "SHA-256 verified"); n != 2 {
		t.Errorf("%d verified transfers, want 2 (before and after the failure):\n%s", n, out)
	}
	if n := strings.Count(out, "sealed end to end (checked at a and at e"); n != 2 {
		t.Errorf("%d transfers reported sealed end to end, want 2:\n%s", n, out)
	}
	t.Log("\n" + out)
}

func TestDemoRejectsANonPositiveTimeout(t *testing.T) {
	code, _, stderr := cm(t, "demo", "--timeout", "0s")
	if code != 2 || !strings.Contains(stderr, "--timeout must be positive") {
		t.Fatalf("demo --timeout 0s: exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
}
