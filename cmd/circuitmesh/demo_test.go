package main

import (
	"strings"
	"testing"
)

func TestDemoRelaysVerifiesAndFailsOver(t *testing.T) {
	code, out, stderr := cm(t, "demo", "--size", "4")
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
