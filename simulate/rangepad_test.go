package simulate

import (
	"errors"
	"slices"
	"testing"
)

// TestZeroPaddedRangeKeepsItsNames: a range whose first or last number
// has a leading zero declares the names as written, with the width kept,
// as the shell's {007..009} does: "nodes n007..n009" is n007, n008 and
// n009 (not n7..n9, which left the n007 named next an "unknown node").
func TestZeroPaddedRangeKeepsItsNames(t *testing.T) {
	for src, want := range map[string][]string{
		"nodes n007..n009\nlink n007-n008\n": {"n007", "n008", "n009"},
		"nodes a01..a03\nlink a01-a02\n":     {"a01", "a02", "a03"},
		"nodes n08..n10\n":                   {"n08", "n09", "n10"},
		"nodes n8..n010\n":                   {"n008", "n009", "n010"},
		"nodes n0..n2\n":                     {"n0", "n1", "n2"},
		"nodes n9..n11\n":                    {"n9", "n10", "n11"},
		"nodes x00..x01\n":                   {"x00", "x01"},
	} {
		s, err := Parse("pad.sim", src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if got := s.Steps[0].Nodes; !slices.Equal(got, want) {
			t.Errorf("%q: declared %v, want %v", src, got, want)
		}
	}
}

// TestHugeRangeIsRefused: a range of more numbers than an int holds past
// its first is refused at its line, like any range over MaxNodes (the
// count overflowed and the parser panicked making a negative slice).
func TestHugeRangeIsRefused(t *testing.T) {
	for _, src := range []string{
		"nodes n0..n9223372036854775807\n",
		"nodes n1..n9223372036854775807\n",
		"regions eu:n0..n9223372036854775807\n",
	} {
		_, err := Parse("huge.sim", src)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != 1 {
			t.Errorf("%q: %v, want a ParseError at line 1", src, err)
		}
	}
}
