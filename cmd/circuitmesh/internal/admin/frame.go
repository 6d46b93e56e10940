package admin

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// After the dial upgrade the client writes raw bytes (its EOF half-closes
// the circuit), and the daemon answers in frames, so that the client can
// tell a circuit that ended cleanly from one that was reset:
//
//	type (1 byte) | length (4 bytes, big endian) | payload
//
// Type 0 carries circuit bytes, type 1 (empty) is the circuit's clean end
// and type 2 carries the reason the circuit failed (at most maxReason
// bytes). A connection that ends without type 1 or 2 was cut.
const (
	frameData  = 0
	frameEnd   = 1
	frameError = 2

	frameHeader  = 5
	maxFrameData = 32 << 10
	maxReason    = 1024
)

// ErrCircuitReset is wrapped by reads from a Circuit that the mesh ended
// with an error (reset, link lost, refused behind the service).
var ErrCircuitReset = errors.New("circuit reset")

// errFrame is wrapped for a malformed frame from the daemon.
var errFrame = errors.New("malformed dial frame")

// frameWriter writes circuit bytes as data frames.
type frameWriter struct{ w io.Writer }

func (f frameWriter) Write(p []byte) (int, error) {
	var n int
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrameData)]
		if err := writeFrame(f.w, frameData, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func writeFrame(w io.Writer, typ byte, p []byte) error {
	b := make([]byte, frameHeader, frameHeader+len(p))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(p)))
	_, err := w.Write(append(b, p...))
	return err
}

// frameReader reads the daemon's frames as a byte stream: io.EOF after a
// clean end, an error wrapping ErrCircuitReset after a failure, and
// io.ErrUnexpectedEOF when the connection ends without either.
type frameReader struct {
	r    *bufio.Reader
	left int // data bytes left in the current frame
	err  error
}

func (f *frameReader) Read(p []byte) (int, error) {
	for f.left == 0 {
		if f.err != nil {
			return 0, f.err
		}
		f.err = f.next()
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		f.err = err
	}
	return n, err
}

// next reads a frame header; for a data frame it sets left, otherwise it
// returns the error that ends the stream.
func (f *frameReader) next() error {
	var h [frameHeader]byte
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		if err == io.EOF {
			return fmt.Errorf("daemon connection ended without the circuit's end: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	n := binary.BigEndian.Uint32(h[1:])
	switch h[0] {
	case frameData:
		if n > maxFrameData {
			return fmt.Errorf("%w: %d-byte data frame", errFrame, n)
		}
		f.left = int(n)
		return nil
	case frameEnd:
		if n != 0 {
			return fmt.Errorf("%w: end frame with %d bytes", errFrame, n)
		}
		return io.EOF
	case frameError:
		if n > maxReason {
			return fmt.Errorf("%w: %d-byte reason", errFrame, n)
		}
		reason := make([]byte, n)
		if _, err := io.ReadFull(f.r, reason); err != nil {
			return fmt.Errorf("%w: reason: %w", errFrame, err)
		}
		return fmt.Errorf("%w: %s", ErrCircuitReset, reason)
	}
	return fmt.Errorf("%w: type %d", errFrame, h[0])
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
