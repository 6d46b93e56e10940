package bucket

import (
	"testing"
	"time"
)

// TestSharedHoldsPartsToSharesWhileContended: on a quiet whole one part
// draws beyond its share; once the whole is below half its burst, a part
// that spent its share is refused while another part still draws.
func TestSharedHoldsPartsToSharesWhileContended(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewShared(0, 64, 8, t0) // a share: burst 16
	a, b := s.Share(t0), s.Share(t0)
	taken := 0
	for s.Allows(&a, t0) {
		s.Take(t0)
		s.Charge(&a, t0)
		taken++
	}
	if taken != 33 {
		t.Fatalf("one part took %d, want 33: its share (16), then beyond it until the whole is below half its burst (32)", taken)
	}
	if !s.Allows(&b, t0) {
		t.Fatal("another part refused while the whole is contended and its share whole")
	}
	if a.Tokens != -a.Burst {
		t.Fatalf("the first part owes %v, want at most its burst %v", -a.Tokens, a.Burst)
	}
}
