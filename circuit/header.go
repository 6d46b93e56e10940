package circuit

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Flags are the open header's option bits. Unknown bits are kept and
// forwarded unchanged by relays.
type Flags uint16

const (
	// FlagEarly: the caller wrote data right after the open header without
	// waiting for the result.
	FlagEarly Flags = 1 << 0
	// FlagRecordPath: the source names itself first in Open.Path, and the
	// destination returns the full path in the result. (Relays append
	// their names to Open.Path whether it is set or not.)
	FlagRecordPath Flags = 1 << 1
)

// DefaultHopLimit is the hop limit Dial and DialEarly use when Open.HopLimit
// is zero.
const DefaultHopLimit = 16

// Open is the header that starts every circuit stream, written by the source
// and forwarded (amended by Forward) by every relay.
type Open struct {
	Dest    string // destination node name (required)
	Source  string // source node name (required); see doc.go on trust
	Service string // service at the destination
	// HopLimit is how many more relays may forward the circuit. Each relay
	// decrements it; a relay that receives 0 and must forward refuses with
	// code HopLimit.
	HopLimit uint8
	// Hop is 0 at the source and incremented by each relay.
	Hop uint8
	// W3C trace context of the sender's span.
	TraceParent, TraceState string
	Flags                   Flags
	// Path lists the relays crossed so far, in order: Hop names, after
	// the source's own name when FlagRecordPath is set. Every relay
	// appends its name (Forward) and the next checks that the path ends
	// with it (CheckPath).
	Path []string
}

// RecordedPath is o.Path when the source asked for it (FlagRecordPath),
// else nil: what the destination returns in the result.
func (o *Open) RecordedPath() []string {
	if o.Flags&FlagRecordPath == 0 {
		return nil
	}
	return o.Path
}

// ErrForgedPath: an open header's path does not match the hops it claims
// to have crossed (CheckPath).
var ErrForgedPath = errors.New("circuit: open path does not match its hops")

// CheckPath checks o's path against peer, the authenticated neighbour o
// came from: it holds o.Hop names, after o.Source when FlagRecordPath is
// set, and at hop > 0 it ends with peer. Failures wrap ErrForgedPath.
//
// Each relay appending its name and the next checking it makes the path
// a chain that names, hop by hop back to the first relay that lied, the
// neighbours an open really came from: a router forging the source of
// opens it says it relays cannot pose as another relay, since the honest
// relay after it finds its name last.
func (o *Open) CheckPath(peer string) error {
	want := int(o.Hop)
	if o.Flags&FlagRecordPath != 0 {
		want++
	}
	switch {
	case len(o.Path) != want:
		return fmt.Errorf("%w: open at hop %d from %s has a path of %d names, want %d", ErrForgedPath, o.Hop, peer, len(o.Path), want)
	case o.Flags&FlagRecordPath != 0 && o.Path[0] != o.Source:
		return fmt.Errorf("%w: recorded path from %s starts with %s, not source %s", ErrForgedPath, peer, o.Path[0], o.Source)
	case o.Hop > 0 && o.Path[len(o.Path)-1] != peer:
		return fmt.Errorf("%w: open forwarded by %s ends its path with %s", ErrForgedPath, peer, o.Path[len(o.Path)-1])
	}
	return nil
}

// AppendTo appends the encoded header to b. It fails with an error wrapping
// ErrMalformedHeader (missing Dest or Source, invalid UTF-8) or
// ErrHeaderTooLarge (more than DefaultMaxHeaderSize bytes).
func (o *Open) AppendTo(b []byte) ([]byte, error) {
	if o.Dest == "" || o.Source == "" {
		return b, fmt.Errorf("%w: open needs Dest and Source", ErrMalformedHeader)
	}
	return appendFrame(b, kindOpen, func(b []byte) ([]byte, error) {
		b = append(b, byte(o.Flags>>8), byte(o.Flags), o.HopLimit, o.Hop)
		var err error
		for _, s := range [...]string{o.Dest, o.Source, o.Service, o.TraceParent, o.TraceState} {
			if b, err = appendString(b, s); err != nil {
				return b, err
			}
		}
		return appendList(b, o.Path)
	})
}

// WriteOpen writes the encoded header to w in one Write.
func WriteOpen(w io.Writer, o *Open) error { return writeHeader(w, o) }

// ReadOpen reads exactly one open header from r (never more bytes). max
// bounds the header size (<= 0 means DefaultMaxHeaderSize). Decoding
// failures wrap ErrMalformedHeader or ErrHeaderTooLarge; a Dest, Source or
// Path name that is not a valid node name (identity.ValidateName, the rule
// certificates follow) makes the header malformed, and the error wraps
// identity.ErrInvalidName too; so does a non-empty Service that breaks
// ValidateService, the error wrapping ErrInvalidService; a stream that
// ends before the first byte gives an error wrapping io.EOF; other read
// errors are returned wrapped.
func ReadOpen(r io.Reader, max int) (*Open, error) {
	return readHeader(r, kindOpen, max, parseOpen)
}

// ReadOpenAhead is ReadOpen for a stream whose header is usually followed
// at once by more (a first flight: handshake and early data). It reads
// what the stream has at hand into buf, up to len(buf) bytes in all (or
// the header's length when that is more), and waits only for the header
// itself; the bytes after the header come back as rest, which lies in buf
// when the header fitted in it. A relay forwards rest with its header in
// one write, so the next hop gets both in one packet; a destination reads
// rest before the stream. buf may come from a pool: the decoded Open
// does not refer to it.
func ReadOpenAhead(r io.Reader, max int, buf []byte) (o *Open, rest []byte, err error) {
	f := newFrameReader(kindOpen, max)
	f.buf = buf[:0:len(buf)]
	for {
		want, err := f.want()
		if err != nil {
			return nil, nil, fmt.Errorf("circuit: read open header: %w", err)
		}
		if len(f.buf) >= prefixLen && len(f.buf) >= want {
			o, err := parseOpen(f.buf[prefixLen:want])
			if err != nil {
				return nil, nil, err
			}
			if len(f.buf) > want {
				rest = f.buf[want:]
			}
			return o, rest, nil
		}
		if cap(f.buf) < want {
			nb := make([]byte, len(f.buf), want)
			copy(nb, f.buf)
			f.buf = nb
		}
		n, err := r.Read(f.buf[len(f.buf):cap(f.buf)])
		f.buf = f.buf[:len(f.buf)+n]
		switch {
		case err == nil, n > 0 && err == io.EOF:
		case err == io.EOF && len(f.buf) > 0:
			return nil, nil, fmt.Errorf("circuit: read open header: %w", errTruncated)
		default:
			return nil, nil, fmt.Errorf("circuit: read open header: %w", err)
		}
	}
}

func parseOpen(body []byte) (*Open, error) {
	d := decoder{b: body}
	o := &Open{}
	o.Flags = Flags(d.u16())
	o.HopLimit = d.u8()
	o.Hop = d.u8()
	o.Dest = d.str()
	o.Source = d.str()
	o.Service = d.str()
	o.TraceParent = d.str()
	o.TraceState = d.str()
	o.Path = d.list()
	if err := d.finish(); err != nil {
		return nil, err
	}
	if o.Dest == "" || o.Source == "" {
		return nil, fmt.Errorf("%w: open without Dest or Source", ErrMalformedHeader)
	}
	if err := identity.ValidateName(o.Dest); err != nil {
		return nil, fmt.Errorf("%w: open dest: %w", ErrMalformedHeader, err)
	}
	if err := identity.ValidateName(o.Source); err != nil {
		return nil, fmt.Errorf("%w: open source: %w", ErrMalformedHeader, err)
	}
	if o.Service != "" {
		if err := ValidateService(o.Service); err != nil {
			return nil, fmt.Errorf("%w: open %w", ErrMalformedHeader, err)
		}
	}
	if err := checkPathNames(o.Path); err != nil {
		return nil, fmt.Errorf("%w: open %w", ErrMalformedHeader, err)
	}
	return o, nil
}

// MaxServiceLen is the longest service name, in bytes.
const MaxServiceLen = 63

// ServiceReserved holds the runes no service name may hold, though they
// are punctuation: ',' separates the values of a policy selector (and the
// values of a repeatable flag given in the environment), '#' starts a
// comment in a policy, and '*' is a selector's wildcard. Without them, a
// policy rule can name any service.
const ServiceReserved = ",#*"

// blankRunes are letters, marks and symbols that render as nothing or as
// blank space (Hangul fillers, the blank braille pattern, the Khmer
// inherent vowels, the combining grapheme joiner): allowed by their
// category, they would let "web" and "web" followed by one of them look
// alike in logs, spans and the CLI. ValidateService refuses them, the
// variation selectors and Unicode's other default-ignorable code points.
const blankRunes = "\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\u034f"

// ErrInvalidService: a service name breaks the rule of ValidateService.
var ErrInvalidService = errors.New("invalid service name")

// ValidateService checks a service name: 1 to MaxServiceLen bytes of
// UTF-8, every rune a letter, mark, number, punctuation or symbol (no
// spaces, control, format or unassigned runes: nothing that moves a
// terminal's cursor, hides text or changes its direction), except the
// runes of ServiceReserved and those that render blank (Hangul fillers,
// the blank braille pattern, ...). Capitals and a leading '_' (InfoService) are
// allowed. The error wraps ErrInvalidService and quotes the name, escaped
// (cut to 20 characters when too long).
//
// The destination's spans, logs and refusal reasons carry the service
// name of an open: the hop that reads an open header refuses one whose
// service breaks this rule (ReadOpen), as it does a name that is not a
// node name.
func ValidateService(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("service name is empty: %w", ErrInvalidService)
	case len(name) > MaxServiceLen:
		return fmt.Errorf("service name %.20q... is %d bytes, longer than %d: %w", name, len(name), MaxServiceLen, ErrInvalidService)
	case !utf8.ValidString(name):
		return fmt.Errorf("service name %q is not UTF-8: %w", name, ErrInvalidService)
	}
	for i, r := range name {
		if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S) {
			return fmt.Errorf("service name %q: character %q at %d not allowed (want letters, digits, punctuation or symbols, no spaces or control characters): %w",
				name, r, i, ErrInvalidService)
		}
		if strings.ContainsRune(blankRunes, r) || unicode.In(r, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point) {
			return fmt.Errorf("service name %q: character %+q at %d not allowed (it renders blank): %w", name, r, i, ErrInvalidService)
		}
		if strings.ContainsRune(ServiceReserved, r) {
			return fmt.Errorf("service name %q: character %q at %d not allowed (the runes of %q are policy syntax): %w",
				name, r, i, ServiceReserved, ErrInvalidService)
		}
	}
	return nil
}

// checkPathNames checks that every name of a path is a node name
// (identity.ValidateName): each relay writes its own, and the names end
// up in the destination's Conn.Path, its logs and its spans.
func checkPathNames(path []string) error {
	for i, name := range path {
		if err := identity.ValidateName(name); err != nil {
			return fmt.Errorf("path name %d: %w", i, err)
		}
	}
	return nil
}

// Forward returns the header a relay named relay sends to the next hop:
// HopLimit decremented, Hop incremented, and relay appended to Path. It
// fails with ErrHopLimit when HopLimit is 0 (the relay then refuses with
// code HopLimit) and with ErrHeaderTooLarge when the path is full.
func (o *Open) Forward(relay string) (*Open, error) {
	if o.HopLimit == 0 {
		return nil, fmt.Errorf("circuit to %s/%s at %s: %w", o.Dest, o.Service, relay, ErrHopLimit)
	}
	if o.Hop == 255 {
		return nil, fmt.Errorf("circuit to %s/%s at %s: hop index overflow: %w", o.Dest, o.Service, relay, ErrHopLimit)
	}
	n := *o
	n.HopLimit--
	n.Hop++
	if len(o.Path) >= maxListLen {
		return nil, fmt.Errorf("%w: path of %d names is full", ErrHeaderTooLarge, len(o.Path))
	}
	n.Path = append(o.Path[:len(o.Path):len(o.Path)], relay)
	return &n, nil
}
