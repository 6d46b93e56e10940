package circuit

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

func sampleOpen() *Open {
	return &Open{
		Dest: "d", Source: "s", Service: "grpc", HopLimit: 16, Hop: 2,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:  "vendor=x", Flags: FlagRecordPath | FlagEarly,
		Path: []string{"r1", "r2"},
	}
}

func TestOpenRoundTrip(t *testing.T) {
	for _, o := range []*Open{sampleOpen(), {Dest: "d", Source: "s"}} {
		var buf bytes.Buffer
		if err := WriteOpen(&buf, o); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("payload")
		got, err := ReadOpen(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("round trip: got %+v, want %+v", got, o)
		}
		if rest := buf.String(); rest != "payload" {
			t.Fatalf("ReadOpen consumed payload: left %q", rest)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	for _, r := range []Result{
		{Code: Accepted, Node: "d", Path: []string{"r1"}},
		{Code: NoRoute, Node: "r1", Reason: "no route to d"},
	} {
		var buf bytes.Buffer
		if err := WriteResult(&buf, r); err != nil {
			t.Fatal(err)
		}
		buf.WriteString("x")
		got, err := ReadResult(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, r) {
			t.Fatalf("round trip: got %+v, want %+v", *got, r)
		}
		if buf.String() != "x" {
			t.Fatal("ReadResult consumed payload")
		}
	}
}

// TestResultTextFromHops: a result's node name and reason are written
// by whichever hop refused, and the caller's error carries them to logs
// and terminals. A node name no certificate can carry makes the header
// malformed; a reason is read with every rune that is not printable
// replaced.
func TestResultTextFromHops(t *testing.T) {
	read := func(r Result) (*Result, error) {
		t.Helper()
		var buf bytes.Buffer
		if err := WriteResult(&buf, r); err != nil {
			t.Fatal(err)
		}
		return ReadResult(&buf, 0)
	}
	for _, node := range []string{"m\x1b[8m", "M", "a b", "-m", strings.Repeat("m", 64)} {
		_, err := read(Result{Code: Policy, Node: node})
		if !errors.Is(err, ErrMalformedHeader) || !errors.Is(err, identity.ErrInvalidName) {
			t.Errorf("result naming %q: %v, want a malformed header for an invalid name", node, err)
		}
		if err == nil {
			continue
		}
		if msg := err.Error(); strings.ContainsFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Errorf("result naming %q: the error carries control characters: %q", node, msg)
		}
	}
	got, err := read(Result{Code: Policy, Node: "m", Reason: "\x1b]0;owned\x07\r\x1b[2Kall good\nnext \u202e"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "?]0;owned???[2Kall good?next ?"; got.Reason != want {
		t.Errorf("reason read as %q, want %q", got.Reason, want)
	}
}

func TestHeaderBounds(t *testing.T) {
	big := &Open{Dest: "d", Source: "s", TraceState: strings.Repeat("x", DefaultMaxHeaderSize)}
	if _, err := big.AppendTo(nil); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("encode oversize: %v, want ErrHeaderTooLarge", err)
	}
	// A 1000-byte header is fine by default but too large for a 512 limit,
	// and the reader refuses it from the prefix, before reading the body.
	o := &Open{Dest: "d", Source: "s", TraceState: strings.Repeat("x", 1000)}
	b, err := o.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadOpen(bytes.NewReader(b[:4]), 512); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("read oversize: %v, want ErrHeaderTooLarge", err)
	}
	if _, err := ReadOpen(bytes.NewReader(b), 0); err != nil {
		t.Fatalf("read within default limit: %v", err)
	}
	path := make([]string, 256)
	for i := range path {
		path[i] = "r"
	}
	if _, err := (&Open{Dest: "d", Source: "s", Path: path}).AppendTo(nil); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("256-entry path: %v, want ErrHeaderTooLarge", err)
	}
}

func TestHeaderMalformed(t *testing.T) {
	good, _ := sampleOpen().AppendTo(nil)
	// reframe wraps a body in a version 1 open prefix.
	reframe := func(body []byte) []byte {
		return append([]byte{1, kindOpen, byte(len(body) >> 8), byte(len(body))}, body...)
	}
	body := good[4:]
	// Open{Dest: "x", Source: "s"}: flags u16, limit, hop, then dest at 4.
	xs, _ := (&Open{Dest: "x", Source: "s"}).AppendTo(nil)
	noDest := append(append([]byte{}, xs[4:8]...), append([]byte{0, 0}, xs[11:]...)...)
	cases := []struct {
		name string
		b    []byte
		text string // part of the error text, proving which check failed
	}{
		{"version", append([]byte{2}, good[1:]...), "version 2"},
		{"kind", append([]byte{1, kindResult}, good[2:]...), "kind 2"},
		{"trailing", reframe(append(append([]byte{}, body...), 0)), "1 trailing bytes"},
		{"short", reframe(body[:len(body)-1]), "truncated string"},
		{"no dest", reframe(noDest), "without Dest"},
		{"bad utf8", reframe(append(append([]byte{}, xs[4:8]...), append([]byte{0, 1, 0xff}, xs[11:]...)...)), "UTF-8"},
	}
	for _, c := range cases {
		_, err := ReadOpen(bytes.NewReader(c.b), 0)
		if !errors.Is(err, ErrMalformedHeader) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v, want ErrMalformedHeader saying %q", c.name, err, c.text)
		}
	}
	if _, err := ReadOpen(bytes.NewReader(good[:len(good)-3]), 0); !errors.Is(err, ErrMalformedHeader) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated stream: %v, want ErrMalformedHeader and io.ErrUnexpectedEOF", err)
	}
	if _, err := ReadOpen(bytes.NewReader(nil), 0); !errors.Is(err, io.EOF) || errors.Is(err, ErrMalformedHeader) {
		t.Errorf("empty stream: %v, want io.EOF only", err)
	}
	if _, err := (&Open{Dest: "d"}).AppendTo(nil); !errors.Is(err, ErrMalformedHeader) {
		t.Errorf("encode without Source: %v", err)
	}
	if err := WriteResult(io.Discard, Result{Code: 99, Node: "x"}); !errors.Is(err, ErrMalformedHeader) {
		t.Errorf("encode unknown code: %v", err)
	}
}

func TestForward(t *testing.T) {
	o := sampleOpen()
	n, err := o.Forward("r3")
	if err != nil {
		t.Fatal(err)
	}
	if n.HopLimit != 15 || n.Hop != 3 || !reflect.DeepEqual(n.Path, []string{"r1", "r2", "r3"}) {
		t.Fatalf("forwarded %+v", n)
	}
	if len(o.Path) != 2 || o.HopLimit != 16 {
		t.Fatal("Forward modified its receiver")
	}
	o.Flags = 0
	if n, _ := o.Forward("r3"); !reflect.DeepEqual(n.Path, []string{"r1", "r2", "r3"}) {
		t.Fatalf("without FlagRecordPath Forward gave the path %q: relays always append theirs", n.Path)
	}
	o.Path = make([]string, 255)
	if _, err := o.Forward("r3"); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("full path: %v, want ErrHeaderTooLarge", err)
	}
	o.HopLimit = 0
	if _, err := o.Forward("r3"); !errors.Is(err, ErrHopLimit) {
		t.Fatalf("hop limit 0: %v, want ErrHopLimit", err)
	}
}

func TestCheckSource(t *testing.T) {
	first := &Open{Dest: "d", Source: "s", HopLimit: 4}
	forwarded, _ := first.Forward("r1")
	twice, _ := forwarded.Forward("r2")
	recorded := &Open{Dest: "d", Source: "s", HopLimit: 4, Flags: FlagRecordPath, Path: []string{"s"}}
	recordedFwd, _ := recorded.Forward("r1")
	with := func(o *Open, f func(*Open)) *Open { n := *o; f(&n); return &n }
	for _, c := range []struct {
		name   string
		o      *Open
		peer   string
		role   links.Role
		ok     bool
		forged bool // the path is what fails
	}{
		{"first", first, "s", links.RoleLeaf, true, false},
		{"self-declared source", first, "mallory", links.RoleRouter, false, false},
		{"forwarded", forwarded, "r1", links.RoleRouter, true, false},
		{"forwarded twice", twice, "r2", links.RoleRouter, true, false},
		{"recorded", recorded, "s", links.RoleLeaf, true, false},
		{"recorded, forwarded", recordedFwd, "r1", links.RoleRouter, true, false},
		{"leaves never forward", forwarded, "r1", links.RoleLeaf, false, false},
		{"path does not end with the sender", forwarded, "r2", links.RoleRouter, false, true},
		{"sender poses as an earlier relay", twice, "r1", links.RoleRouter, false, true},
		{"no path at hop 1", with(forwarded, func(o *Open) { o.Path = nil }), "r1", links.RoleRouter, false, true},
		{"path longer than the hops", with(forwarded, func(o *Open) { o.Path = []string{"x", "r1"} }), "r1", links.RoleRouter, false, true},
		{"path shorter than the hops", with(twice, func(o *Open) { o.Path = []string{"r2"} }), "r2", links.RoleRouter, false, true},
		{"path at hop 0", with(first, func(o *Open) { o.Path = []string{"s"} }), "s", links.RoleLeaf, false, true},
		{"recorded path without the source", with(recorded, func(o *Open) { o.Path = nil }), "s", links.RoleLeaf, false, true},
		{"recorded path starting elsewhere", with(recordedFwd, func(o *Open) { o.Path = []string{"x", "r1"} }), "r1", links.RoleRouter, false, true},
	} {
		err := CheckSource(c.o, c.peer, c.role)
		if c.ok != (err == nil) || err != nil && !errors.Is(err, ErrRefusedByPolicy) || c.forged != errors.Is(err, ErrForgedPath) {
			t.Errorf("%s: hop %d source %s path %q from %s (%s): %v", c.name, c.o.Hop, c.o.Source, c.o.Path, c.peer, c.role, err)
		}
	}
}

// ReadOpenAhead waits for the header only: on a stream whose first flight
// is just the header it returns without more, and on one where payload
// arrived with the header it returns that payload as rest.
func TestReadOpenAheadWaitsForTheHeaderOnly(t *testing.T) {
	hdr, err := sampleOpen().AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pr.Close()
	go pw.Write(hdr) // nothing follows until the test ends
	o, rest, err := ReadOpenAhead(pr, 0, make([]byte, 2048))
	if err != nil || !reflect.DeepEqual(o, sampleOpen()) || len(rest) != 0 {
		t.Fatalf("got %+v, rest %q, %v; want the open and no rest", o, rest, err)
	}
	o, rest, err = ReadOpenAhead(bytes.NewReader(append(hdr, "early"...)), 0, make([]byte, 2048))
	if err != nil || !reflect.DeepEqual(o, sampleOpen()) || string(rest) != "early" {
		t.Fatalf("got %+v, rest %q, %v; want the open and rest \"early\"", o, rest, err)
	}
}

// TestPathReturnedOnlyWhenAsked: relays append their names to every
// open's path, but without FlagRecordPath the destination returns none:
// neither end's Conn reports a path.
func TestPathReturnedOnlyWhenAsked(t *testing.T) {
	p := newPath(t, 2, nil)
	c := mustConnect(t, p, basicOpen(), false)
	if got := c.caller.Path(); got != nil {
		t.Errorf("caller path %q without FlagRecordPath", got)
	}
	if got := c.dest.Path(); got != nil {
		t.Errorf("destination path %q without FlagRecordPath", got)
	}
}
