package routing

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Wire format of a routing message (version 3), big-endian:
//
//	message = version:u8 count:u16 entry*count
//	entry   = kind:u8 namelen:u8 name:namelen body
//	update  (kind 1) body = seqno:u16 metric:u32 hops:u16
//	request (kind 2) body = seqno:u16 hopcount:u8
//	attest  (kind 3) body = seqno:u16 attlen:u16 attestation:attlen
//	summary (kind 4) body = buckets:u16 bucket:u16 count:u16 digest:u64
//	resend  (kind 5) body = buckets:u16 bucket:u16
//
// The message must be consumed exactly; names are 1..255 bytes (empty for
// summary and resend), an attestation is 1..MaxAttestationLen bytes, and
// buckets is a power of two in 1..maxBuckets with bucket < buckets.
const wireVersion = 3

const (
	kindUpdate  = 1
	kindRequest = 2
	kindAttest  = 3
	kindSummary = 4
	kindResend  = 5
)

const (
	headerLen     = 3
	updateBodyLen = 8
	requestBody   = 3
	attestBodyMin = 4
	summaryBody   = 14
	resendBody    = 4
)

// maxBuckets bounds the buckets of a summary (docs/PROTOCOL.md §2.3).
const maxBuckets = 4096

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
	metric Metric  // updates
	hops   uint16  // updates: hops from the sender to origin
	hopcnt uint8   // requests: remaining forwarding budget
	att    []byte  // attestations
	org    *origin // the table entry of origin when decoded (engine only)

	buckets, bucket uint16 // summaries and resend requests
	count           uint16 // summaries: routes in the bucket
	digest          uint64 // summaries
}

// entrySize is the encoded size of e.
func entrySize(e entry) int {
	n := 2 + len(e.origin)
	switch e.kind {
	case kindUpdate:
		return n + updateBodyLen
	case kindAttest:
		return n + attestBodyMin + len(e.att)
	case kindSummary:
		return n + summaryBody
	case kindResend:
		return n + resendBody
	}
	return n + requestBody
}

// encodeMessage encodes entries (already bounded by the caller).
func encodeMessage(entries []entry) []byte {
	size := headerLen
	for _, e := range entries {
		size += entrySize(e)
	}
	b := appendHeader(make([]byte, 0, size))
	for _, e := range entries {
		b = appendEntry(b, e)
	}
	setCount(b, len(entries))
	return b
}

// appendHeader appends a message header with a count of 0 (setCount).
func appendHeader(b []byte) []byte { return append(b, wireVersion, 0, 0) }

// setCount sets the entry count of message b.
func setCount(b []byte, n int) { binary.BigEndian.PutUint16(b[1:headerLen], uint16(n)) }

// appendUpdate appends the encoding of an update (as appendEntry).
func appendUpdate(b []byte, origin string, seqno uint16, metric Metric, hops uint16) []byte {
	b = append(b, kindUpdate, uint8(len(origin)))
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint16(b, seqno)
	b = binary.BigEndian.AppendUint32(b, uint32(metric))
	return binary.BigEndian.AppendUint16(b, hops)
}

// appendAttest appends the encoding of an attestation (as appendEntry).
func appendAttest(b []byte, origin string, seqno uint16, att []byte) []byte {
	b = append(b, kindAttest, uint8(len(origin)))
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint16(b, seqno)
	b = binary.BigEndian.AppendUint16(b, uint16(len(att)))
	return append(b, att...)
}

// appendEntry appends the encoding of e (entrySize(e) bytes).
func appendEntry(b []byte, e entry) []byte {
	switch e.kind {
	case kindUpdate:
		return appendUpdate(b, e.origin, e.seqno, e.metric, e.hops)
	case kindAttest:
		return appendAttest(b, e.origin, e.seqno, e.att)
	}
	b = append(b, e.kind, uint8(len(e.origin)))
	b = append(b, e.origin...)
	if e.kind == kindSummary || e.kind == kindResend {
		b = binary.BigEndian.AppendUint16(b, e.buckets)
		b = binary.BigEndian.AppendUint16(b, e.bucket)
		if e.kind == kindSummary {
			b = binary.BigEndian.AppendUint16(b, e.count)
			b = binary.BigEndian.AppendUint64(b, e.digest)
		}
		return b
	}
	b = binary.BigEndian.AppendUint16(b, e.seqno)
	return append(b, e.hopcnt) // a request
}

// decodeMessage decodes b, accepting at most maxEntries entries. Any error
// wraps ErrMalformed. Attestations alias b.
func decodeMessage(b []byte, maxEntries int) ([]entry, error) {
	return decodeInto(nil, b, maxEntries, nil)
}

// decodeInto is decodeMessage appending to dst, with names converted by
// intern (if not nil) so that known names are not allocated again; intern
// also gives their table entries.
func decodeInto(dst []entry, b []byte, maxEntries int, intern func([]byte) (string, *origin)) ([]entry, error) {
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
	// Each entry takes at least 2+4 bytes: reject impossible counts
	// before allocating.
	if n*6 > len(b)-headerLen {
		return nil, fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrMalformed, n, len(b))
	}
	out := slices.Grow(dst[:0], n)
	p := b[headerLen:]
	// An attestation and the update it covers come in a row: the name of
	// an entry after an attestation is compared with the attestation's
	// before it is interned (comparing the names of other entries with
	// the previous one's rarely found them equal).
	var prev []byte
	var prevName string
	var prevOrg *origin
	for i := range n {
		if len(p) < 2 {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrMalformed, i)
		}
		kind, l := p[0], int(p[1])
		if kind == kindSummary || kind == kindResend {
			if l != 0 {
				return nil, fmt.Errorf("%w: entry %d of kind %d has a name", ErrMalformed, i, kind)
			}
			body := resendBody
			if kind == kindSummary {
				body = summaryBody
			}
			if len(p) < 2+body {
				return nil, fmt.Errorf("%w: entry %d truncated", ErrMalformed, i)
			}
			q := p[2 : 2+body]
			en := entry{kind: kind, buckets: binary.BigEndian.Uint16(q), bucket: binary.BigEndian.Uint16(q[2:])}
			if en.buckets == 0 || en.buckets > maxBuckets || en.buckets&(en.buckets-1) != 0 || en.bucket >= en.buckets {
				return nil, fmt.Errorf("%w: entry %d has bucket %d of %d", ErrMalformed, i, en.bucket, en.buckets)
			}
			if kind == kindSummary {
				en.count = binary.BigEndian.Uint16(q[4:])
				en.digest = binary.BigEndian.Uint64(q[6:])
			}
			out = append(out, en)
			p = p[2+body:]
			prev = nil
			continue
		}
		if l == 0 {
			return nil, fmt.Errorf("%w: entry %d has an empty name", ErrMalformed, i)
		}
		var body int
		switch kind {
		case kindUpdate:
			body = updateBodyLen
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
			return nil, fmt.Errorf("%w: entry %d has unknown kind %d", ErrMalformed, i, kind)
		}
		if len(p) < 2+l+body {
			return nil, fmt.Errorf("%w: entry %d truncated", ErrMalformed, i)
		}
		name, q := p[2:2+l], p[2+l:2+l+body]
		p = p[2+l+body:]
		var org *origin
		var oname string
		switch {
		case intern == nil:
			oname = string(name)
		case prev != nil && string(name) == string(prev):
			oname, org = prevName, prevOrg
		default:
			oname, org = intern(name)
		}
		prev = nil
		// Written in place, once (an entry is 88 bytes).
		out = out[:len(out)+1]
		en := &out[len(out)-1]
		switch kind {
		case kindUpdate:
			*en = entry{kind: kindUpdate, origin: oname, org: org, seqno: binary.BigEndian.Uint16(q),
				metric: Metric(binary.BigEndian.Uint32(q[2:])), hops: binary.BigEndian.Uint16(q[6:])}
		case kindAttest:
			// Aliases b: the engine copies the few it keeps.
			*en = entry{kind: kindAttest, origin: oname, org: org, seqno: binary.BigEndian.Uint16(q),
				att: q[attestBodyMin:body:body]}
			prev, prevName, prevOrg = name, oname, org
		default:
			*en = entry{kind: kindRequest, origin: oname, org: org, seqno: binary.BigEndian.Uint16(q), hopcnt: q[2]}
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(p))
	}
	return out, nil
}
