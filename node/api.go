package node

import "net"

// Conn is a circuit: a net.Conn to a service on a peer, with half-close
// and the path the circuit took.
type Conn interface {
	net.Conn
	// CloseWrite half-closes: the peer reads io.EOF; reading continues.
	CloseWrite() error
	// Path is the path the relays reported, source first and destination
	// last, when DialOptions.RecordPath was set: each relay's word, not a
	// proof of the nodes the circuit crossed (docs/SECURITY.md).
	Path() []string
	// Sealed reports whether the circuit is end-to-end secured: its payload
	// is encrypted and authenticated between the two ends, which proved
	// their names to each other, so relays carried only ciphertext.
	Sealed() bool
}

// EchoService is the built-in service every node answers: it echoes bytes.
const EchoService = "echo"
