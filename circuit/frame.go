package circuit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Wire framing shared by the open and the result header (see PROTOCOL):
//
//	version u8 | kind u8 | body length u16 big-endian | body
//
// Strings in a body are a u16 big-endian length followed by UTF-8 bytes;
// lists are a u8 count followed by that many strings.
const (
	// Version is the circuit header version this package speaks.
	Version = 1
	// DefaultMaxHeaderSize bounds a header, prefix included. Encoders never
	// produce larger headers; readers given max <= 0 use it.
	DefaultMaxHeaderSize = 4096

	kindOpen   = 1
	kindResult = 2
	prefixLen  = 4
	maxListLen = 255
)

var errTruncated = fmt.Errorf("%w: truncated: %w", ErrMalformedHeader, io.ErrUnexpectedEOF)

// frameReader reads one header frame, keeping partial progress across
// calls, so a read interrupted by a deadline can be resumed without losing
// bytes. It never reads past the end of the frame.
type frameReader struct {
	kind byte
	max  int
	buf  []byte
}

func newFrameReader(kind byte, max int) *frameReader {
	if max <= 0 {
		max = DefaultMaxHeaderSize
	}
	return &frameReader{kind: kind, max: max, buf: make([]byte, 0, 128)}
}

// want is the total frame length once the prefix is known, else prefixLen.
func (f *frameReader) want() (int, error) {
	if len(f.buf) < prefixLen {
		return prefixLen, nil
	}
	if f.buf[0] != Version {
		return 0, fmt.Errorf("%w: unsupported version %d", ErrMalformedHeader, f.buf[0])
	}
	if f.buf[1] != f.kind {
		return 0, fmt.Errorf("%w: kind %d, want %d", ErrMalformedHeader, f.buf[1], f.kind)
	}
	n := prefixLen + int(binary.BigEndian.Uint16(f.buf[2:]))
	if n > f.max {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrHeaderTooLarge, n, f.max)
	}
	return n, nil
}

// fill reads until the frame is complete and returns its body. After an
// error other than a header error it may be called again.
func (f *frameReader) fill(r io.Reader) ([]byte, error) {
	for {
		want, err := f.want()
		if err != nil {
			return nil, err
		}
		if len(f.buf) >= prefixLen && len(f.buf) == want {
			return f.buf[prefixLen:], nil
		}
		if cap(f.buf) < want {
			nb := make([]byte, len(f.buf), want)
			copy(nb, f.buf)
			f.buf = nb
		}
		n, err := r.Read(f.buf[len(f.buf):want])
		f.buf = f.buf[:len(f.buf)+n]
		if err == nil || n > 0 && err == io.EOF {
			continue
		}
		if err == io.EOF && len(f.buf) > 0 {
			return nil, errTruncated
		}
		return nil, err
	}
}

// appendFrame wraps the body built by body() in a frame prefix.
func appendFrame(b []byte, kind byte, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(b)
	b = append(b, Version, kind, 0, 0)
	b, err := body(b)
	if err != nil {
		return b[:start], err
	}
	n := len(b) - start
	if n > DefaultMaxHeaderSize {
		return b[:start], fmt.Errorf("%w: %d bytes, limit %d", ErrHeaderTooLarge, n, DefaultMaxHeaderSize)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n-prefixLen))
	return b, nil
}

func appendString(b []byte, s string) ([]byte, error) {
	if len(s) > DefaultMaxHeaderSize {
		return b, fmt.Errorf("%w: string of %d bytes", ErrHeaderTooLarge, len(s))
	}
	if !utf8.ValidString(s) {
		return b, fmt.Errorf("%w: string is not UTF-8", ErrMalformedHeader)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...), nil
}

func appendList(b []byte, l []string) ([]byte, error) {
	if len(l) > maxListLen {
		return b, fmt.Errorf("%w: list of %d entries, limit %d", ErrHeaderTooLarge, len(l), maxListLen)
	}
	b = append(b, byte(len(l)))
	var err error
	for _, s := range l {
		if s == "" {
			return b, fmt.Errorf("%w: empty path entry", ErrMalformedHeader)
		}
		if b, err = appendString(b, s); err != nil {
			return b, err
		}
	}
	return b, nil
}

// decoder walks a frame body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformedHeader, what)
	}
}

func (d *decoder) u8() uint8 {
	if len(d.b) < 1 {
		d.fail("truncated body")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u16() uint16 {
	if len(d.b) < 2 {
		d.fail("truncated body")
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) str() string {
	n := int(d.u16())
	if len(d.b) < n {
		d.fail("truncated string")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	if !utf8.ValidString(s) {
		d.fail("string is not UTF-8")
	}
	return s
}

func (d *decoder) list() []string {
	n := int(d.u8())
	if n == 0 {
		return nil
	}
	l := make([]string, 0, min(n, len(d.b)/2))
	for i := 0; i < n && d.err == nil; i++ {
		s := d.str()
		if s == "" {
			d.fail("empty path entry")
		}
		l = append(l, s)
	}
	return l
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	return d.err
}

// isHeaderError reports whether err is a decoding failure rather than I/O.
func isHeaderError(err error) bool {
	return errors.Is(err, ErrMalformedHeader) || errors.Is(err, ErrHeaderTooLarge)
}

// writeHeader encodes h and writes it in one Write.
func writeHeader(w io.Writer, h interface{ AppendTo([]byte) ([]byte, error) }) error {
	b, err := h.AppendTo(make([]byte, 0, 128))
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// readHeader reads one frame of kind and decodes its body with parse.
func readHeader[T any](r io.Reader, kind byte, max int, parse func([]byte) (*T, error)) (*T, error) {
	body, err := newFrameReader(kind, max).fill(r)
	if err != nil {
		return nil, fmt.Errorf("circuit: read %s header: %w", kindName(kind), err)
	}
	return parse(body)
}

func kindName(kind byte) string {
	if kind == kindOpen {
		return "open"
	}
	return "result"
}
