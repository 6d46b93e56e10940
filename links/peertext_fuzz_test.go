package links

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzPeerText makes any text a peer sends (a goodbye, a refusal, a
// close reason) fit to log: valid UTF-8 of at most 512 bytes, every rune
// printable, unchanged when it already was, the input's runes in order
// with only the unprintable ones replaced, and the same made again.
func FuzzPeerText(f *testing.F) {
	for _, s := range []string{"bye", "shutting down\n", "\x1b[31mred\x1b[0m", "\u202eevil", strings.Repeat("é", 300), "\xff\xfe", strings.Repeat("a", 511) + "€"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := PeerText(s)
		if len(out) > maxReasonLen || !utf8.ValidString(out) {
			t.Fatalf("PeerText(%q) = %q: %d bytes, valid %v", s, out, len(out), utf8.ValidString(out))
		}
		clean := true
		in := []rune(s)
		i := 0
		for _, r := range out {
			if !unicode.IsPrint(r) {
				t.Fatalf("PeerText(%q) = %q holds %U", s, out, r)
			}
			if i >= len(in) {
				t.Fatalf("PeerText(%q) = %q is longer than its input", s, out)
			}
			if r != in[i] && (r != '?' || unicode.IsPrint(in[i]) && in[i] != utf8.RuneError) {
				t.Fatalf("PeerText(%q) = %q: rune %d %U became %U", s, out, i, in[i], r)
			}
			i++
		}
		for _, r := range s {
			clean = clean && r != utf8.RuneError && unicode.IsPrint(r)
		}
		if clean && len(s) <= maxReasonLen && out != s {
			t.Fatalf("printable %q became %q", s, out)
		}
		if again := PeerText(out); again != out {
			t.Fatalf("PeerText(%q) = %q, and again %q", s, out, again)
		}
	})
}
