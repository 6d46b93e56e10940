package node

import "github.com/circuitmesh/circuitmesh/links"

// localPipe returns two connected in-memory streams for a local circuit.
func localPipe() (links.Stream, links.Stream) {
	panic("local circuits need the in-memory stream pair")
}
