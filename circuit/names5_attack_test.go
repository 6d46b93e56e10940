package circuit

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// TestAttackOpenNamesAreNodeNames: a relay writes the open header the
// next hop reads, and may put in it, as the destination, the source or a
// name of the path, bytes no certificate carries: terminal escapes, 255
// bytes of junk, capitals, spaces. Before, ReadOpen returned them and they
// reached the destination's Conn.Path, RemoteAddr, logs and spans. Now
// each makes the header malformed (ErrMalformedHeader wrapping
// identity.ErrInvalidName), with an error free of control characters; the
// same holds for the names of a result's path, which the source returns
// from Conn.Path. Valid names still read back unchanged.
func TestAttackOpenNamesAreNodeNames(t *testing.T) {
	bad := []string{"m\x1b[2J", "M", "a b", "-m", strings.Repeat("j", 255)}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrMalformedHeader) || !errors.Is(err, identity.ErrInvalidName) {
			t.Errorf("%s: %v, want a malformed header for an invalid name", what, err)
			return
		}
		if msg := err.Error(); strings.ContainsFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Errorf("%s: the error carries control characters: %q", what, msg)
		}
	}
	// readOpen reads o with ReadOpen, and checks that ReadOpenAhead (what
	// nodes use) agrees.
	readOpen := func(o *Open) error {
		t.Helper()
		b, err := o.AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ReadOpen(bytes.NewReader(b), 0)
		_, _, ahead := ReadOpenAhead(bytes.NewReader(b), 0, make([]byte, 64))
		if errors.Is(err, identity.ErrInvalidName) != errors.Is(ahead, identity.ErrInvalidName) {
			t.Errorf("%+q: ReadOpen gives %v, ReadOpenAhead %v", o.Path, err, ahead)
		}
		return err
	}
	for _, name := range bad {
		for what, o := range map[string]*Open{
			"dest":              {Dest: name, Source: "s", Service: "svc"},
			"source":            {Dest: "d", Source: name, Service: "svc", Hop: 1, Path: []string{"r"}},
			"recorded source":   {Dest: "d", Source: name, Flags: FlagRecordPath, Hop: 1, Path: []string{name, "r"}},
			"relay on the path": {Dest: "d", Source: "s", Hop: 2, Path: []string{"r1", name}},
		} {
			check(fmt.Sprintf("%s %.8q", what, name), readOpen(o))
		}
		var buf bytes.Buffer
		if err := WriteResult(&buf, Result{Code: Accepted, Node: "d", Path: []string{"s", name, "d"}}); err != nil {
			t.Fatal(err)
		}
		_, err := ReadResult(&buf, 0)
		check(fmt.Sprintf("result path %.8q", name), err)
	}
	good := &Open{Dest: "d-1.x_y", Source: "0s", Flags: FlagRecordPath, Hop: 1, Path: []string{"0s", strings.Repeat("r", identity.MaxNameLen)}}
	if err := readOpen(good); err != nil {
		t.Errorf("open with valid names: %v", err)
	}
}
