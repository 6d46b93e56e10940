package circuit

import (
	"fmt"
	"io"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// Result is the header that answers an open: written by the destination
// (Accepted or a refusal) or by the relay that refused, and carried back to
// the caller unchanged by every relay in between.
type Result struct {
	Code   Code
	Node   string   // the node that produced the result (required; a valid node name when read)
	Reason string   // free text for refusals; may be empty; printable when read
	Path   []string // relays crossed, copied from Open.Path
}

// MaxReasonLen bounds the Reason text Refuse sends (longer text is cut).
const MaxReasonLen = 512

// AppendTo appends the encoded result header to b.
func (r *Result) AppendTo(b []byte) ([]byte, error) {
	if r.Node == "" {
		return b, fmt.Errorf("%w: result needs Node", ErrMalformedHeader)
	}
	if r.Code > maxCode {
		return b, fmt.Errorf("%w: unknown result code %d", ErrMalformedHeader, r.Code)
	}
	return appendFrame(b, kindResult, func(b []byte) ([]byte, error) {
		b = append(b, byte(r.Code))
		var err error
		if b, err = appendString(b, r.Node); err != nil {
			return b, err
		}
		if b, err = appendString(b, r.Reason); err != nil {
			return b, err
		}
		return appendList(b, r.Path)
	})
}

// WriteResult writes the encoded result header to w in one Write.
func WriteResult(w io.Writer, r Result) error { return writeHeader(w, &r) }

// ReadResult reads exactly one result header from r (never more bytes).
// Errors are as for ReadOpen. A Node or a Path name that is not a valid
// node name (identity.ValidateName) makes the header malformed; the Reason read is
// links.PeerText of the one sent (every rune that is not printable
// replaced by '?'): any hop on the path writes these bytes, and they end
// up in the caller's error, which is logged and printed to terminals.
func ReadResult(r io.Reader, max int) (*Result, error) {
	return readHeader(r, kindResult, max, parseResult)
}

func parseResult(body []byte) (*Result, error) {
	d := decoder{b: body}
	r := &Result{}
	r.Code = Code(d.u8())
	r.Node = d.str()
	r.Reason = d.str()
	r.Path = d.list()
	if err := d.finish(); err != nil {
		return nil, err
	}
	if r.Code > maxCode {
		return nil, fmt.Errorf("%w: unknown result code %d", ErrMalformedHeader, r.Code)
	}
	if err := identity.ValidateName(r.Node); err != nil {
		return nil, fmt.Errorf("%w: result node: %w", ErrMalformedHeader, err)
	}
	if err := checkPathNames(r.Path); err != nil {
		return nil, fmt.Errorf("%w: result %w", ErrMalformedHeader, err)
	}
	r.Reason = links.PeerText(r.Reason)
	return r, nil
}

// Err returns nil when the result is Accepted, else a *RefusedError for a
// circuit to dest/service, which says it is not authenticated.
func (r *Result) Err(dest, service string) error {
	if r.Code == Accepted {
		return nil
	}
	return &RefusedError{Code: r.Code, Node: r.Node, Dest: dest, Service: service, Reason: r.Reason, header: true}
}
