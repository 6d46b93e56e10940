package links

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/circuitmesh/circuitmesh/internal/growread"
)

// Control-stream frame layout (see docs/PROTOCOL.md, "Links"):
//
//	type    uint8
//	length  uint32, big endian, at most MaxFrameSize
//	payload length bytes
//
// Frames of an unknown type are read and discarded, so that later versions
// may add frame types without a version bump.

// MaxFrameSize is the largest control-frame payload in bytes. Routing
// payloads larger than this are refused by SendRouting; a peer that sends a
// larger frame is disconnected.
const MaxFrameSize = 64 << 10

// frameHeaderLen is the size of the type and length fields.
const frameHeaderLen = 5

// Frame types.
const (
	frameHello      uint8 = 0x01 // hello: see helloMsg
	frameReady      uint8 = 0x02 // the dialler accepted the acceptor's hello; empty
	frameRouting    uint8 = 0x03 // opaque routing payload
	frameProbe      uint8 = 0x04 // liveness probe: seq uint64, stamp uint64
	frameProbeReply uint8 = 0x05 // the probe's first 16 bytes (seq, stamp)
	frameGoodbye    uint8 = 0x06 // reason text (UTF-8)
	frameDraining   uint8 = 0x07 // the sender is shutting down; empty
)

// ErrFrameTooLarge is returned for control frames longer than MaxFrameSize.
var ErrFrameTooLarge = errors.New("control frame too large")

// errBadFrame reports a malformed control frame payload.
var errBadFrame = errors.New("malformed control frame")

// frame is one decoded control frame. payload is freshly allocated and owned
// by the receiver.
type frame struct {
	typ     uint8
	payload []byte
}

// appendFrame appends the encoding of one frame to dst.
func appendFrame(dst []byte, typ uint8, payload []byte) ([]byte, error) {
	if len(payload) > MaxFrameSize {
		return dst, fmt.Errorf("frame type %#x of %d bytes (max %d): %w", typ, len(payload), MaxFrameSize, ErrFrameTooLarge)
	}
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...), nil
}

// readFrame reads the next frame of a known type from r, skipping frames of
// unknown types. io.EOF is returned only at a frame boundary.
func readFrame(r io.Reader) (frame, error) {
	var hdr [frameHeaderLen]byte
	for {
		if _, err := io.ReadFull(r, hdr[:1]); err != nil {
			return frame{}, err
		}
		if _, err := io.ReadFull(r, hdr[1:]); err != nil {
			return frame{}, fmt.Errorf("read frame header: %w", noEOF(err))
		}
		typ := hdr[0]
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > MaxFrameSize {
			return frame{}, fmt.Errorf("frame type %#x announces %d bytes (max %d): %w", typ, n, MaxFrameSize, ErrFrameTooLarge)
		}
		if !knownFrame(typ) {
			if err := skip(r, n); err != nil {
				return frame{}, fmt.Errorf("skip frame type %#x: %w", typ, noEOF(err))
			}
			continue
		}
		payload, err := growread.Read(r, int(n), frameStartBuf) // memory for what came, not for n
		if err != nil {
			return frame{}, fmt.Errorf("read frame type %#x: %w", typ, noEOF(err))
		}
		return frame{typ: typ, payload: payload}, nil
	}
}

// frameStartBuf is the buffer a frame's payload starts in (it doubles as
// the bytes come, so a peer that announces a large frame and stalls holds
// little): most control frames (probes, routing updates of a few routes)
// fit.
const frameStartBuf = 4 << 10

// skip discards the next n bytes of r, in its own buffer when r has one
// (the link's read loop reads through a bufio.Reader).
func skip(r io.Reader, n uint32) error {
	if n == 0 {
		return nil
	}
	if d, ok := r.(interface{ Discard(int) (int, error) }); ok {
		_, err := d.Discard(int(n))
		return err
	}
	_, err := io.CopyN(io.Discard, r, int64(n))
	return err
}

func knownFrame(typ uint8) bool {
	return typ >= frameHello && typ <= frameDraining
}

// noEOF turns an end of stream inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// helloMsg is the first frame each side sends on the control stream.
//
//	version   uint16
//	role      uint8
//	features  uint64
//	instance  uint64  random per transport start; tells a restarted peer apart
//	nonce     uint64  random per dial; breaks ties between duplicate links
//	mesh      uint8 length + bytes
//	node      uint8 length + bytes
//
// Bytes after node are ignored (room for later fields).
type helloMsg struct {
	Version  uint16
	Role     Role
	Features uint64
	Instance uint64
	Nonce    uint64
	Mesh     string
	Node     string
}

const helloFixedLen = 2 + 1 + 8 + 8 + 8

// maxNameLen bounds mesh and node names in the hello.
const maxNameLen = 255

func (h *helloMsg) marshal() ([]byte, error) {
	if len(h.Mesh) > maxNameLen || len(h.Node) > maxNameLen {
		return nil, fmt.Errorf("hello: mesh or node name longer than %d bytes: %w", maxNameLen, errBadFrame)
	}
	b := make([]byte, 0, helloFixedLen+2+len(h.Mesh)+len(h.Node))
	b = binary.BigEndian.AppendUint16(b, h.Version)
	b = append(b, byte(h.Role))
	b = binary.BigEndian.AppendUint64(b, h.Features)
	b = binary.BigEndian.AppendUint64(b, h.Instance)
	b = binary.BigEndian.AppendUint64(b, h.Nonce)
	b = append(b, byte(len(h.Mesh)))
	b = append(b, h.Mesh...)
	b = append(b, byte(len(h.Node)))
	b = append(b, h.Node...)
	return b, nil
}

func (h *helloMsg) unmarshal(b []byte) error {
	if len(b) < helloFixedLen {
		return fmt.Errorf("hello of %d bytes: %w", len(b), errBadFrame)
	}
	h.Version = binary.BigEndian.Uint16(b)
	h.Role = Role(b[2])
	h.Features = binary.BigEndian.Uint64(b[3:])
	h.Instance = binary.BigEndian.Uint64(b[11:])
	h.Nonce = binary.BigEndian.Uint64(b[19:])
	rest := b[helloFixedLen:]
	var ok bool
	if h.Mesh, rest, ok = cutName(rest); !ok {
		return fmt.Errorf("hello mesh name: %w", errBadFrame)
	}
	if h.Node, _, ok = cutName(rest); !ok {
		return fmt.Errorf("hello node name: %w", errBadFrame)
	}
	return nil
}

func cutName(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}

// probeLen is the payload length of probes and probe replies.
const probeLen = 16

func probePayload(seq uint64, stamp int64) []byte {
	b := make([]byte, 0, probeLen)
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(stamp))
}

func parseProbe(b []byte) (seq uint64, stamp int64, err error) {
	if len(b) < probeLen {
		return 0, 0, fmt.Errorf("probe of %d bytes: %w", len(b), errBadFrame)
	}
	return binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:])), nil
}

// maxReasonLen bounds goodbye and refusal reason texts.
const maxReasonLen = 512

func truncReason(s string) string {
	if len(s) > maxReasonLen {
		return s[:maxReasonLen]
	}
	return s
}

// PeerText is a reason text a peer sent (a goodbye, a refusal, a close
// reason; the circuit package uses it for the reasons of circuit
// results), fit to log and print: at most 512 bytes, cut at a rune, with every rune that is not printable (control characters such as
// ESC, CR and LF, bidirectional overrides, invalid UTF-8) replaced by '?'.
// A peer chooses these bytes, and they end up in errors the node logs,
// publishes and the CLI prints to a terminal.
func PeerText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > maxReasonLen {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
