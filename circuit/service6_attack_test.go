package circuit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode"
)

// TestAttackOpenServiceNames: the source or any relay writes the service
// of an open header, and the destination's spans, logs and refusal
// reasons carry it. Before, ReadOpen returned any UTF-8 there: terminal
// escapes, NUL, a right-to-left override, spaces, thousands of bytes.
// Now each makes the header malformed (ErrMalformedHeader wrapping
// ErrInvalidService), with an error free of control characters, and
// ValidateService, which Listen and Dial apply, refuses them too (and
// invalid UTF-8, which the header's decoder refuses before), and letters
// that render blank (a Hangul filler after "web" passed before). The names
// the project's docs and tests use, capitals, a leading '_', punctuation
// and other scripts read back unchanged, as does an empty service.
func TestAttackOpenServiceNames(t *testing.T) {
	bad := []string{
		"\x1b[2J\x1b[1;31mroot\x1b[0m", "svc\x00", "svc\x7f", "\u202egnp.exe", "a b", "tab\there",
		"nb\u00a0sp", "zero\u200bwidth", "new\nline", "priv\ue000", strings.Repeat("s", MaxServiceLen+1), strings.Repeat("s", 255),
		// Letters and symbols that render blank: "web" and these look alike.
		"web\u3164", "web\u2800", "\u115fweb", "web\uffa0", "web\u034f",
		"web\ufe00", "web\ufe0f", "web\U000e0100", "web\U000e01ef", "web\u180b", "web\u180f",
	}
	good := []string{
		"", "_info", "echo", "sink", "Web-API.v2", "grpc.health.v1.Health/Check", "svc:8080", "日本語",
		strings.Repeat("s", MaxServiceLen),
	}
	printable := func(s string) bool { return !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) }
	read := func(svc string) (*Open, error) {
		t.Helper()
		b, err := (&Open{Dest: "d", Source: "s", Service: svc}).AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := ReadOpen(bytes.NewReader(b), 0)
		_, _, ahead := ReadOpenAhead(bytes.NewReader(b), 0, make([]byte, 64))
		if (err == nil) != (ahead == nil) {
			t.Errorf("%.20q: ReadOpen gives %v, ReadOpenAhead %v", svc, err, ahead)
		}
		return o, err
	}
	for _, svc := range bad {
		_, err := read(svc)
		if !errors.Is(err, ErrMalformedHeader) || !errors.Is(err, ErrInvalidService) || !printable(err.Error()) {
			t.Errorf("open with service %.20q: %q, want a malformed header for an invalid service, printable", svc, err)
		}
		if err := ValidateService(svc); !errors.Is(err, ErrInvalidService) || !printable(err.Error()) {
			t.Errorf("ValidateService(%.20q) = %q, want ErrInvalidService, printable", svc, err)
		}
	}
	if err := ValidateService("svc\xff"); !errors.Is(err, ErrInvalidService) || !printable(err.Error()) {
		t.Errorf("ValidateService of invalid UTF-8 = %q, want ErrInvalidService, printable", err)
	}
	for _, svc := range good {
		o, err := read(svc)
		if err != nil || o.Service != svc {
			t.Errorf("open with service %q: %+v, %v; want it read back", svc, o, err)
		}
		if err := ValidateService(svc); (err == nil) != (svc != "") {
			t.Errorf("ValidateService(%q) = %v", svc, err)
		}
	}
}
