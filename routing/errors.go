package routing

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these with
// context; test them with errors.Is.
var (
	// ErrInvalidConfig: New was given an unusable Config.
	ErrInvalidConfig = errors.New("routing: invalid config")
	// ErrMalformed: a received message does not decode. The engine state is
	// unchanged.
	ErrMalformed = errors.New("routing: malformed message")
	// ErrUnknownNeighbour: a message came from a node with no link up (for
	// example one delivered just after LinkDown). It is ignored.
	ErrUnknownNeighbour = errors.New("routing: message from unknown neighbour")
	// ErrOverBudget: a neighbour sent more messages or bytes than its
	// receive budget allows (Engine.Receive); the message was refused
	// unread. The engine state is unchanged.
	ErrOverBudget = errors.New("routing: neighbour over its receive budget")
)

// errEmpty is the error of a message without entries.
var errEmpty = fmt.Errorf("%w: no entry", ErrMalformed)

// refusal is the error of a message refused before it was decoded: it
// names the neighbour, but is formatted only when printed.
type refusal struct {
	from string
	err  error
}

func (r *refusal) Error() string { return fmt.Sprintf("message from %q: %v", r.from, r.err) }
func (r *refusal) Unwrap() error { return r.err }
