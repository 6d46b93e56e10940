package routing

import "errors"

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
)
