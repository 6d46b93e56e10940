package routing

import (
	"encoding/binary"
	"fmt"
)

// Wire format of a routing message (version 1), big-endian:
//
//	message = version:u8 count:u16 entry*count
//	entry   = kind:u8 namelen:u8 name:namelen body
//	update  (kind 1) body = seqno:u16 metric:u32 hops:u16
//	request (kind 2) body = seqno:u16 hopcount:u8
//
// The message must be consumed exactly; names are 1..255 bytes.
const wireVersion = 1

const (
	kindUpdate  = 1
	kindRequest = 2
)

const (
	headerLen     = 3
	updateBodyLen = 8
	requestBody   = 3
)

// entry is one decoded update or seqno request.
type entry struct {
	kind   uint8
	origin string
	seqno  uint16
	metric Metric // updates
	hops   uint16 // updates: hops from the sender to origin
	hopcnt uint8  // requests: remaining forwarding budget
}

// entrySize is the encoded size of e.
func entrySize(e entry) int {
	n := 2 + len(e.origin)
	if e.kind == kindUpdate {
		return n + updateBodyLen
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
		if e.kind == kindUpdate {
			b = binary.BigEndian.AppendUint32(b, uint32(e.metric))
			b = binary.BigEndian.AppendUint16(b, e.hops)
		} else {
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
		default:
			return nil, fmt.Errorf("%w: entry %d has unknown kind %d", ErrMalformed, i, e.kind)
		}
		if len(p) < 2+l+body {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrMalformed, i)
		}
		e.origin = string(p[2 : 2+l])
		q := p[2+l:]
		e.seqno = binary.BigEndian.Uint16(q)
		if e.kind == kindUpdate {
			e.metric = Metric(binary.BigEndian.Uint32(q[2:]))
			e.hops = binary.BigEndian.Uint16(q[6:])
		} else {
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
