package routing

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Wire format of a routing message (version 2), big-endian:
//
//	message = version:u8 count:u16 entry*count
//	entry   = kind:u8 namelen:u8 name:namelen body
//	update  (kind 1) body = seqno:u16 metric:u32 hops:u16
//	request (kind 2) body = seqno:u16 hopcount:u8
//	attest  (kind 3) body = seqno:u16 attlen:u16 attestation:attlen
//
// The message must be consumed exactly; names are 1..255 bytes and an
// attestation 1..MaxAttestationLen bytes.
const wireVersion = 2

const (
	kindUpdate  = 1
	kindRequest = 2
	kindAttest  = 3
)

const (
	headerLen     = 3
	updateBodyLen = 8
	requestBody   = 3
	attestBodyMin = 4
)

// MaxAttestationLen bounds one origin attestation on the wire.
const MaxAttestationLen = 4096

// maxMessageBytes bounds an encoded message so that it fits a 64 KiB
// control-stream frame.
const maxMessageBytes = 60 << 10

// entry is one decoded update or seqno request.
type entry struct {
	kind   uint8
	origin string
	seqno  uint16
	metric Metric // updates
	hops   uint16 // updates: hops from the sender to origin
	hopcnt uint8  // requests: remaining forwarding budget
	att    []byte // attestations
}

// entrySize is the encoded size of e.
func entrySize(e entry) int {
	n := 2 + len(e.origin)
	switch e.kind {
	case kindUpdate:
		return n + updateBodyLen
	case kindAttest:
		return n + attestBodyMin + len(e.att)
	}
	return n + requestBody
}

// encodeMessage encodes entries (already bounded by the caller).
func encodeMessage(entries []entry) []byte {
	size := headerLen
	for _, e := range entries {
		size += entrySize(e)
	}
	b := make([]byte, 0, size)
	b = append(b, wireVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		b = append(b, e.kind, uint8(len(e.origin)))
		b = append(b, e.origin...)
		b = binary.BigEndian.AppendUint16(b, e.seqno)
		switch e.kind {
		case kindUpdate:
			b = binary.BigEndian.AppendUint32(b, uint32(e.metric))
			b = binary.BigEndian.AppendUint16(b, e.hops)
		case kindAttest:
			b = binary.BigEndian.AppendUint16(b, uint16(len(e.att)))
			b = append(b, e.att...)
		default:
			b = append(b, e.hopcnt)
		}
	}
	return b
}

// decodeMessage decodes b, accepting at most maxEntries entries. Any error
// wraps ErrMalformed.
func decodeMessage(b []byte, maxEntries int) ([]entry, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrMalformed, len(b))
	}
	if b[0] != wireVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], wireVersion)
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	if n > maxEntries {
		return nil, fmt.Errorf("%w: %d entries exceed the limit of %d", ErrMalformed, n, maxEntries)
	}
	// Each entry takes at least 2+1+3 bytes: reject impossible counts
	// before allocating.
	if n*6 > len(b)-headerLen {
		return nil, fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrMalformed, n, len(b))
	}
	out := make([]entry, 0, n)
	p := b[headerLen:]
	for i := range n {
		if len(p) < 2 {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrMalformed, i)
		}
		e := entry{kind: p[0]}
		l := int(p[1])
		if l == 0 {
			return nil, fmt.Errorf("%w: entry %d has an empty name", ErrMalformed, i)
		}
		body := updateBodyLen
		switch e.kind {
		case kindUpdate:
		case kindRequest:
			body = requestBody
		case kindAttest:
			body = attestBodyMin
			if len(p) >= 2+l+attestBodyMin {
				al := int(binary.BigEndian.Uint16(p[2+l+2:]))
				if al == 0 || al > MaxAttestationLen {
					return nil, fmt.Errorf("%w: entry %d has an attestation of %d bytes (1..%d)", ErrMalformed, i, al, MaxAttestationLen)
				}
				body += al
			}
		default:
			return nil, fmt.Errorf("%w: entry %d has unknown kind %d", ErrMalformed, i, e.kind)
		}
		if len(p) < 2+l+body {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrMalformed, i)
		}
		e.origin = string(p[2 : 2+l])
		q := p[2+l:]
		e.seqno = binary.BigEndian.Uint16(q)
		switch e.kind {
		case kindUpdate:
			e.metric = Metric(binary.BigEndian.Uint32(q[2:]))
			e.hops = binary.BigEndian.Uint16(q[6:])
		case kindAttest:
			e.att = bytes.Clone(q[attestBodyMin:body])
		default:
			e.hopcnt = q[2]
		}
		out = append(out, e)
		p = q[body:]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(p))
	}
	return out, nil
}
