package splitmix

import (
	"math/bits"
	"testing"
)

// TestMixSpreadsOneBit: flipping any one input bit flips at least 8 and
// at most 56 of the 64 output bits, and about half on average.
func TestMixSpreadsOneBit(t *testing.T) {
	total := 0
	const inputs = 256
	for i := uint64(0); i < inputs; i++ {
		v := i * 0x9e3779b97f4a7c15
		for b := 0; b < 64; b++ {
			d := bits.OnesCount64(Mix(v) ^ Mix(v^1<<b))
			if d < 8 || d > 56 {
				t.Fatalf("Mix(%#x) and Mix with bit %d flipped differ in %d bits", v, b, d)
			}
			total += d
		}
	}
	if mean := float64(total) / (inputs * 64); mean < 30 || mean > 34 {
		t.Fatalf("one flipped input bit flips %.2f output bits on average, want about 32", mean)
	}
}
