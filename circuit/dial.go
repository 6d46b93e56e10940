package circuit

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/circuitmesh/circuitmesh/links"
)

// Dial opens a circuit on s, a fresh stream on the link to the first hop:
// it writes the open header and waits for the result (one round trip). On
// refusal it resets s and returns the *RefusedError. When ctx ends first,
// s is reset with CloseCancelled and the error wraps ctx.Err(). A zero
// o.HopLimit means DefaultHopLimit. local is this end's address.
func Dial(ctx context.Context, s links.Stream, o *Open, local Addr) (*Conn, error) {
	hdr := openFor(o, 0)
	if err := ctx.Err(); err != nil {
		s.Reset(CloseCancelled)
		return nil, dialError(hdr, err)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset(CloseCancelled) })
	err := WriteOpen(s, hdr)
	var res *Result
	if err == nil {
		res, err = ReadResult(s, 0)
	}
	if !stop() {
		return nil, dialError(hdr, ctx.Err())
	}
	if err != nil {
		s.Reset(resetCode(err))
		return nil, dialError(hdr, err)
	}
	if err := res.Err(hdr.Dest, hdr.Service); err != nil {
		s.Reset(CloseCancelled)
		return nil, err
	}
	return newConn(s, local, Addr{hdr.Dest, hdr.Service}, res.Path), nil
}

// DialEarly writes the open header on s (with FlagEarly) and returns at
// once, so the caller's first bytes travel with the open. The first Read
// waits for the result; a refusal then surfaces from Read and Write as the
// *RefusedError.
func DialEarly(s links.Stream, o *Open, local Addr) (*Conn, error) {
	hdr := openFor(o, FlagEarly)
	if err := WriteOpen(s, hdr); err != nil {
		s.Reset(resetCode(err))
		return nil, dialError(hdr, err)
	}
	c := newConn(s, local, Addr{hdr.Dest, hdr.Service}, nil)
	c.path.Store(nil)
	c.pending = newFrameReader(kindResult, 0)
	c.early.Store(true)
	return c, nil
}

// openFor is the header a dial writes: o with flags, the default hop
// limit, and, when the path is asked for at the source (FlagRecordPath at
// hop 0) and o has none, the path holding the source (CheckPath).
func openFor(o *Open, flags Flags) *Open {
	hdr := *o
	hdr.Flags = hdr.Flags&^FlagEarly | flags
	if hdr.Flags&FlagRecordPath != 0 && hdr.Hop == 0 && len(hdr.Path) == 0 {
		hdr.Path = []string{hdr.Source}
	}
	if hdr.HopLimit == 0 {
		hdr.HopLimit = DefaultHopLimit
	}
	return &hdr
}

func dialError(o *Open, err error) error {
	return fmt.Errorf("circuit: dial %s/%s: %w", o.Dest, o.Service, err)
}

// Accept is the destination's answer once it decided to take the circuit
// whose header o it read from s: it writes an Accepted result (naming
// local.Node and returning o.RecordedPath()) and returns the Conn. The caller must
// have checked o.Source against the link's authenticated peer (see doc.go).
func Accept(s links.Stream, o *Open, local Addr) (*Conn, error) {
	res := Result{Code: Accepted, Node: local.Node, Path: o.RecordedPath()}
	if err := WriteResult(s, res); err != nil {
		s.Reset(resetCode(err))
		return nil, fmt.Errorf("circuit: accept from %s/%s: %w", o.Source, o.Service, err)
	}
	return newConn(s, local, Addr{o.Source, o.Service}, o.RecordedPath()), nil
}

// Refuse writes the refusal r on s and ends s cleanly (FIN, and
// stop-sending for any early data). Used by relays and destinations; r.Code
// must not be Accepted. Reason is cut to MaxReasonLen bytes.
func Refuse(s links.Stream, r Result) error {
	if r.Code == Accepted {
		s.Reset(CloseInternal)
		return fmt.Errorf("%w: Refuse with code accepted", ErrMalformedHeader)
	}
	r.Reason = truncateUTF8(r.Reason, MaxReasonLen)
	if err := WriteResult(s, r); err != nil {
		s.Reset(resetCode(err))
		return fmt.Errorf("circuit: refuse (%s): %w", r.Code, err)
	}
	// Close fails only when the other side already stopped the stream:
	// the source read the result and reset the circuit before our FIN
	// (it races the result through the relays). The refusal is delivered
	// or no longer wanted either way.
	_ = s.Close()
	return nil
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
