package circuit

import (
	"errors"
	"net"
	"strconv"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// Code is the outcome carried by a result header: Accepted, or the reason a
// hop refused the circuit.
type Code uint8

// Result codes. The numeric values are on the wire; never renumber them.
const (
	Accepted     Code = 0 // the destination accepted the circuit
	NoRoute      Code = 1 // a hop has no route to the destination
	NoService    Code = 2 // the destination has no listener for the service
	HopLimit     Code = 3 // the hop limit ran out before the destination
	Policy       Code = 4 // a hop or the destination refused by policy
	Overloaded   Code = 5 // a hop hit a limit (streams, pending opens)
	ShuttingDown Code = 6 // a hop or the destination is shutting down
	LinkLost     Code = 7 // the next hop's link died while opening
	Internal     Code = 8 // an unexpected failure at a hop
	// Retry: the destination cannot take the one-message end-to-end
	// handshake (stale key, timestamp, replay register); open again with
	// the full handshake.
	Retry Code = 9

	maxCode = Retry
)

var codeNames = [...]string{
	Accepted:     "accepted",
	NoRoute:      "no route",
	NoService:    "no such service",
	HopLimit:     "hop limit exceeded",
	Policy:       "refused by policy",
	Overloaded:   "overloaded",
	ShuttingDown: "shutting down",
	LinkLost:     "link lost",
	Internal:     "internal error",
	Retry:        "retry with the full handshake",
}

func (c Code) String() string {
	if c <= maxCode {
		return codeNames[c]
	}
	return "code " + strconv.Itoa(int(c))
}

// Sentinel errors. Every error this package returns for a refusal or a bad
// header wraps one of these, so callers test them with errors.Is.
var (
	ErrNoRoute         = errors.New("circuit: no route")
	ErrNoService       = errors.New("circuit: no such service")
	ErrHopLimit        = errors.New("circuit: hop limit exceeded")
	ErrRefusedByPolicy = errors.New("circuit: refused by policy")
	ErrOverloaded      = errors.New("circuit: overloaded")
	ErrShuttingDown    = errors.New("circuit: shutting down")
	ErrInternal        = errors.New("circuit: internal error at a hop")
	// ErrStalled: a relay's splice ran into one of its bounds, or a hop
	// reclaimed the link buffer a stalled reader held (CloseStalled).
	ErrStalled = errors.New("circuit: stalled")
	// ErrLinkLost is the links sentinel: a refusal with code LinkLost and a
	// stream whose link died both match it.
	ErrLinkLost = links.ErrLinkLost
	// ErrMalformedHeader: an open or result header could not be decoded
	// (bad version, bad kind, truncated, invalid field).
	ErrMalformedHeader = errors.New("circuit: malformed header")
	// ErrHeaderTooLarge: a header exceeds the size limit.
	ErrHeaderTooLarge = errors.New("circuit: header too large")
)

// Err returns the sentinel error for a refusal code, or nil for Accepted.
// Unknown codes map to ErrInternal.
func (c Code) Err() error {
	switch c {
	case Accepted:
		return nil
	case NoRoute:
		return ErrNoRoute
	case NoService:
		return ErrNoService
	case HopLimit:
		return ErrHopLimit
	case Policy:
		return ErrRefusedByPolicy
	case Overloaded:
		return ErrOverloaded
	case ShuttingDown:
		return ErrShuttingDown
	case LinkLost:
		return ErrLinkLost
	case Retry:
		return seal.ErrRetry
	}
	return ErrInternal
}

// RefusedError is a refusal that travelled back to the caller from the hop
// that produced it. It unwraps to the sentinel for Code.
type RefusedError struct {
	Code    Code
	Node    string // the hop that refused
	Dest    string
	Service string
	Reason  string // free text from the refusing hop; may be empty
	// Authenticated: the refusal came in a sealed refusal record from the
	// other end of a sealed circuit (Conn.Deny), which no relay can forge
	// or change. A refusal in a result header is not authenticated, even
	// on a sealed circuit: any hop on the path may have written it, Node
	// and Reason included, and its Error says so.
	Authenticated bool
	// header: the refusal came in a result header.
	header bool
}

func (e *RefusedError) Error() string {
	s := "circuit to " + e.Dest + "/" + e.Service + " refused by " + e.Node
	if e.header {
		s += " (unauthenticated)"
	}
	s += ": " + e.Code.String()
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

func (e *RefusedError) Unwrap() error { return e.Code.Err() }

// Close-reason codes used with links.Stream.Reset by circuits and splices.
// A reset carries one of these to the other end of the circuit, hop by hop;
// a links.StreamResetError seen by a Conn holds it in Code.
const (
	// CloseNormal ends a direction gracefully. As a CloseRead code it means
	// "stop sending, no error"; a splice turns it into a half-close.
	CloseNormal uint64 = 0
	// CloseCancelled: the caller or the destination aborted the circuit.
	CloseCancelled uint64 = 1
	// CloseLinkLost: a link on the path died.
	CloseLinkLost uint64 = 2
	// CloseShuttingDown: a hop on the path is shutting down.
	CloseShuttingDown uint64 = 3
	// CloseInternal: a hop failed for a local reason (e.g. a deadline).
	CloseInternal uint64 = 4
	// CloseProtocol: a peer broke the circuit protocol (bad header).
	CloseProtocol uint64 = 5
	// CloseUnavailable: the destination accepted the circuit but what
	// serves it is down (e.g. the TCP service behind an exposed service
	// refused the connection).
	CloseUnavailable uint64 = 6
	// CloseTimeout: a relay ended the circuit after a bound ran out (a
	// reader that stopped reading, a half-closed circuit left silent).
	CloseTimeout uint64 = 7
	// CloseDenied: a hop's authorization policy no longer allows the
	// circuit (a reloaded policy), or the destination denied a source it
	// could authenticate only after accepting (full end-to-end handshake).
	CloseDenied uint64 = 8
	// CloseStalled: a hop reclaimed the link buffer the circuit held
	// unread: its reader made no progress while the stalled circuits of
	// the link could hold more than half of the link's receive window.
	CloseStalled uint64 = 9
	// CloseOverBudget: the destination's budget of the buffers of
	// resumable circuits had no room for what the circuit was sent (its
	// source's share or the node's budget was full), or took its share
	// back (ErrBufferBudget).
	CloseOverBudget uint64 = 10
)

var closeNames = [...]string{
	CloseNormal: "normal", CloseCancelled: "cancelled", CloseLinkLost: "link lost",
	CloseShuttingDown: "shutting down", CloseInternal: "internal error",
	CloseProtocol: "protocol error", CloseUnavailable: "service unavailable",
	CloseTimeout: "timed out at a relay", CloseDenied: "refused by policy",
	CloseStalled:    "reader stalled (link buffer reclaimed)",
	CloseOverBudget: "resumable circuit buffers over budget",
}

// CloseName names a close-reason code as a reset carries it ("link lost",
// "link lost at hop 2", ...).
func CloseName(code uint64) string { return CloseCode(code).String() }

// CloseCode is a close-reason code as a stream reset carries it: the
// reason (CloseCancelled, CloseLinkLost, ...) in the low 8 bits and, when a
// relay produced the reset, that relay's hop number (1 for the first relay
// from the source) in the next 8 bits. Relays forward resets they receive
// unchanged, so both ends learn which hop ended the circuit.
type CloseCode uint64

// Reason is the close reason without the hop: compare it with CloseLinkLost
// and the other Close constants.
func (c CloseCode) Reason() uint64 { return uint64(c) & 0xff }

// Hop is the hop number of the relay that produced the reset, or 0 when an
// end did (or the hop is unknown).
func (c CloseCode) Hop() int { return int(uint64(c) >> 8 & 0xff) }

func (c CloseCode) String() string {
	r := c.Reason()
	name := "code " + strconv.FormatUint(r, 10)
	if r < uint64(len(closeNames)) {
		name = closeNames[r]
	}
	if h := c.Hop(); h > 0 {
		name += " at hop " + strconv.Itoa(h)
	}
	return name
}

// At returns the code as produced by the relay at hop (1 for the first
// relay). An end (hop 0) and a code already stamped are left as they are.
func (c CloseCode) At(hop int) CloseCode {
	if hop <= 0 || hop > 255 || c > 0xff {
		return c
	}
	return c | CloseCode(hop)<<8
}

func atHop(code uint64, hop int) uint64 { return uint64(CloseCode(code).At(hop)) }

// ResetError is how a circuit's Read and Write report a stream reset: the
// close code (reason and the hop that produced it) and whether it came from
// the other side. errors.Is matches ErrLinkLost, ErrShuttingDown,
// ErrStalled, ErrRefusedByPolicy and ErrBufferBudget by reason, wherever on the path the reset began; errors.As
// also finds the underlying *links.StreamResetError. A reset from the
// other side with reason CloseNormal, the other end's clean close seen
// by a Write, also matches net.ErrClosed, on a plain and a resumable
// circuit alike.
type ResetError struct {
	Code   CloseCode
	Remote bool
	cause  *links.StreamResetError
}

func (e *ResetError) Error() string {
	by := "this end"
	switch {
	case e.Code.Hop() > 0:
		by = "the relay at hop " + strconv.Itoa(e.Code.Hop())
	case e.Remote:
		by = "the path"
	}
	return "circuit reset by " + by + ": " + CloseCode(e.Code.Reason()).String()
}

func (e *ResetError) Unwrap() error { return e.cause }

// Is matches the sentinel of the reset's reason.
func (e *ResetError) Is(target error) bool {
	switch target {
	case ErrRefusedByPolicy:
		return e.Code.Reason() == CloseDenied
	case ErrLinkLost:
		return e.Code.Reason() == CloseLinkLost
	case ErrShuttingDown:
		return e.Code.Reason() == CloseShuttingDown
	case ErrStalled:
		return e.Code.Reason() == CloseTimeout || e.Code.Reason() == CloseStalled
	case ErrBufferBudget:
		return e.Code.Reason() == CloseOverBudget
	case net.ErrClosed:
		return e.Remote && e.Code.Reason() == CloseNormal
	}
	return false
}

// LocalReset is the *ResetError of a reset this end gave with code
// (Remote false): what the Reads and Writes of a Conn ended by Abort
// report. It unwraps to a *links.StreamResetError as the others do.
func LocalReset(code uint64) *ResetError {
	cause := &links.StreamResetError{Code: code}
	return &ResetError{Code: CloseCode(code), cause: cause}
}

// asResetError turns a *links.StreamResetError in err into a *ResetError.
func asResetError(err error) error {
	var re *links.StreamResetError
	if !errors.As(err, &re) {
		return err
	}
	return &ResetError{Code: CloseCode(re.Code), Remote: re.Remote, cause: re}
}

// resetCode is the close-reason code to forward for an error that ended one
// side of a circuit.
func resetCode(err error) uint64 {
	var re *links.StreamResetError
	switch {
	case errors.As(err, &re):
		return re.Code
	case errors.Is(err, links.ErrLinkLost):
		return CloseLinkLost
	case errors.Is(err, ErrMalformedHeader), errors.Is(err, ErrHeaderTooLarge):
		return CloseProtocol
	}
	return CloseInternal
}
