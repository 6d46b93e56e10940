// Package growread reads a length-prefixed payload into a buffer that
// holds memory for the bytes that came, not for the length the prefix
// claims: a peer that announces a large payload and stalls holds little.
// The link layer's control frames and the end-to-end handshake messages
// read their payloads this way.
package growread

import (
	"io"
	"slices"
)

// Read reads n bytes from r into a buffer that starts at start bytes (at
// most n) and doubles as they arrive. An error of r ends it: io.EOF
// before n bytes is returned as is (the caller says whether it was
// unexpected), io.EOF together with the last bytes is not an error.
func Read(r io.Reader, n, start int) ([]byte, error) {
	b := make([]byte, 0, min(n, start))
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n-len(b), max(cap(b), 1)))
		}
		k, err := r.Read(b[len(b):min(n, cap(b))])
		b = b[:len(b)+k]
		if err != nil && (err != io.EOF || len(b) < n) {
			return nil, err
		}
	}
	return b, nil
}
