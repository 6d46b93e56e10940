package routing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Wire format of a routing message (versions 3 and 4), big-endian:
//
//	message = version:u8 count:u16 entry*count
//	entry   = kind:u8 namelen:u8 name:namelen body
//	update  (kind 1) body = seqno:u16 metric:u32 hops:u16
//	request (kind 2) body = seqno:u16 hopcount:u8
//	attest  (kind 3) body = seqno:u16 attlen:u16 attestation:attlen
//	summary (kind 4) body = buckets:u16 bucket:u16 count:u16 digest:u64
//	resend  (kind 5) body = buckets:u16 bucket:u16
//	attested update (kind 6, version 4 only)
//	        body = seqno:u16 metric:u32 hops:u16 attlen:u16 attestation:attlen
//
// The message must be consumed exactly; names are 1..255 bytes (empty for
// summary and resend), an attestation is 1..MaxAttestationLen bytes, and
// buckets is a power of two in 1..maxBuckets with bucket < buckets. An
// attested update is an attestation of (name, seqno) and the update
// (name, seqno, metric, hops), as kind 3 followed by kind 1 would be. A
// message of version 4 without entries is a hello: its sender reads
// version 4 (Engine.Receive).
// Hello returns a hello message: it carries no entries and tells its
// receiver that the sender speaks routing on the link (Engine.Announced)
// and reads version 4. A node sends it on a link it keeps from its
// engine for a while (the engine sends its own as a link comes up).
func Hello() []byte { return []byte{wireVersion, 0, 0} }

const (
	// wireBase is the version every engine reads, sent to a neighbour
	// not known to read wireVersion.
	wireBase = 3
	// wireVersion is the newest version: version 3 and attested updates.
	wireVersion = 4
)

const (
	kindUpdate    = 1
	kindRequest   = 2
	kindAttest    = 3
	kindSummary   = 4
	kindResend    = 5
	kindAttUpdate = 6
)

const (
	headerLen     = 3
	updateBodyLen = 8
	requestBody   = 3
	attestBodyMin = 4
	attUpdateMin  = updateBodyLen + 2 // before the attestation
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

// entry is one decoded entry of a message.
type entry struct {
	kind   uint8
	origin string
	seqno  uint16
	metric Metric  // updates and attested updates
	hops   uint16  // updates: hops from the sender to origin
	hopcnt uint8   // requests: remaining forwarding budget
	att    []byte  // attestations and attested updates
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
	case kindAttUpdate:
		return n + attUpdateMin + len(e.att)
	case kindSummary:
		return n + summaryBody
	case kindResend:
		return n + resendBody
	}
	return n + requestBody
}

// encodeMessage encodes entries (already bounded by the caller), as a
// message of version wireBase unless they hold an attested update.
func encodeMessage(entries []entry) []byte {
	version := uint8(wireBase)
	for _, e := range entries {
		if e.kind == kindAttUpdate {
			version = wireVersion
		}
	}
	return encodeVersion(version, entries)
}

// encodeVersion is encodeMessage as a message of version version.
func encodeVersion(version uint8, entries []entry) []byte {
	size := headerLen
	for _, e := range entries {
		size += entrySize(e)
	}
	b := appendHeader(make([]byte, 0, size), version)
	for _, e := range entries {
		b = appendEntry(b, e)
	}
	setCount(b, len(entries))
	return b
}

// appendHeader appends a message header of version with a count of 0
// (setCount).
func appendHeader(b []byte, version uint8) []byte { return append(b, version, 0, 0) }

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

// appendAttUpdate appends the encoding of an attested update (as
// appendEntry): an attestation of origin at seqno and the update it
// covers.
func appendAttUpdate(b []byte, origin string, seqno uint16, metric Metric, hops uint16, att []byte) []byte {
	b = append(b, kindAttUpdate, uint8(len(origin)))
	b = append(b, origin...)
	b = binary.BigEndian.AppendUint16(b, seqno)
	b = binary.BigEndian.AppendUint32(b, uint32(metric))
	b = binary.BigEndian.AppendUint16(b, hops)
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
	case kindAttUpdate:
		return appendAttUpdate(b, e.origin, e.seqno, e.metric, e.hops, e.att)
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

// decodeInto is decodeMessage into dst's memory, with names converted by
// intern (if not nil) so that known names are not allocated again; intern
// also gives their table entries. dst's memory, up to its capacity, must
// be zero (as after clear): entries are written field by field. On an
// error it is left zero.
func decodeInto(dst []entry, b []byte, maxEntries int, intern func([]byte) (string, *origin)) ([]entry, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrMalformed, len(b))
	}
	if b[0] != wireBase && b[0] != wireVersion {
		return nil, fmt.Errorf("%w: version %d, want %d or %d", ErrMalformed, b[0], wireBase, wireVersion)
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
	// decodeEntry sets only the fields of an entry's kind: the others are
	// zero, as dst's spare capacity is (clearing it here cost 60 million
	// instructions of a cold start at 1000 nodes, where Receive clears
	// the entries once handled anyway).
	out := slices.Grow(dst[:0], n)[:n]
	off := headerLen
	// An attestation and the update it covers come in a row: the name of
	// an entry after an attestation is compared with the attestation's
	// before it is interned (comparing the names of other entries with
	// the previous one's rarely found them equal). pa is the index of
	// that attestation, or -1.
	pa := -1
	for i := range out {
		en := &out[i]
		name, next, err := decodeEntry(en, b, off)
		if err == nil && en.kind == kindAttUpdate && b[0] == wireBase {
			err = errKindVersion
		}
		if err != nil {
			clear(out[:i+1]) // dst stays zero
			return nil, fmt.Errorf("%w: entry %d %w", ErrMalformed, i, err)
		}
		off = next
		if en.kind == kindSummary || en.kind == kindResend {
			pa = -1
			continue
		}
		switch {
		case intern == nil:
			en.origin = string(name)
		case pa >= 0 && string(name) == out[pa].origin:
			en.origin, en.org = out[pa].origin, out[pa].org
		default:
			en.origin, en.org = intern(name)
		}
		pa = -1
		if en.kind == kindAttest {
			pa = i
		}
	}
	if off != len(b) {
		clear(out)
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-off)
	}
	return out, nil
}

// Reasons decodeEntry gives for refusing an entry (wrapped in ErrMalformed
// with the entry's index by decodeInto).
var (
	errTruncated   = errors.New("truncated")
	errEmptyName   = errors.New("has an empty name")
	errNamed       = errors.New("of a summary or resend has a name")
	errUnknownKind = errors.New("has an unknown kind")
	errAttestLen   = fmt.Errorf("has an attestation of a length outside 1..%d", MaxAttestationLen)
	errKindVersion = fmt.Errorf("has kind %d, which version %d does not have", kindAttUpdate, wireBase)
	errBucket      = fmt.Errorf("has a bucket count that is not a power of two in 1..%d, or a bucket beyond it", maxBuckets)
)

// decodeEntry decodes the entry at b[off:] into en, which must be zero,
// except its origin and org (set by decodeInto) (its name is returned, aliasing b), and
// returns the offset of the next entry. Kept out of decodeInto's loop,
// whose state it would otherwise spill at every entry (a third of the
// instructions of decoding).
func decodeEntry(en *entry, b []byte, off int) (name []byte, next int, err error) {
	p := b[off:]
	if len(p) < 2 {
		return nil, 0, errTruncated
	}
	kind, l := p[0], int(p[1])
	switch kind {
	case kindUpdate:
		if l == 0 {
			return nil, 0, errEmptyName
		}
		if len(p) < 2+l+updateBodyLen {
			return nil, 0, errTruncated
		}
		q := p[2+l : 2+l+updateBodyLen]
		en.kind, en.seqno = kindUpdate, binary.BigEndian.Uint16(q)
		en.metric, en.hops = Metric(binary.BigEndian.Uint32(q[2:])), binary.BigEndian.Uint16(q[6:])
		return p[2 : 2+l], off + 2 + l + updateBodyLen, nil
	case kindAttest:
		if l == 0 {
			return nil, 0, errEmptyName
		}
		if len(p) < 2+l+attestBodyMin {
			return nil, 0, errTruncated
		}
		q := p[2+l:]
		al := int(binary.BigEndian.Uint16(q[2:]))
		if al == 0 || al > MaxAttestationLen {
			return nil, 0, errAttestLen
		}
		body := attestBodyMin + al
		if len(q) < body {
			return nil, 0, errTruncated
		}
		// Aliases b: the engine copies the few it keeps.
		en.kind, en.seqno, en.att = kindAttest, binary.BigEndian.Uint16(q), q[attestBodyMin:body:body]
		return p[2 : 2+l], off + 2 + l + body, nil
	case kindAttUpdate:
		if l == 0 {
			return nil, 0, errEmptyName
		}
		if len(p) < 2+l+attUpdateMin {
			return nil, 0, errTruncated
		}
		q := p[2+l:]
		al := int(binary.BigEndian.Uint16(q[updateBodyLen:]))
		if al == 0 || al > MaxAttestationLen {
			return nil, 0, errAttestLen
		}
		body := attUpdateMin + al
		if len(q) < body {
			return nil, 0, errTruncated
		}
		en.kind, en.seqno = kindAttUpdate, binary.BigEndian.Uint16(q)
		en.metric, en.hops = Metric(binary.BigEndian.Uint32(q[2:])), binary.BigEndian.Uint16(q[6:])
		en.att = q[attUpdateMin:body:body] // aliases b, as an attestation's
		return p[2 : 2+l], off + 2 + l + body, nil
	case kindRequest:
		if l == 0 {
			return nil, 0, errEmptyName
		}
		if len(p) < 2+l+requestBody {
			return nil, 0, errTruncated
		}
		q := p[2+l:]
		en.kind, en.seqno, en.hopcnt = kindRequest, binary.BigEndian.Uint16(q), q[2]
		return p[2 : 2+l], off + 2 + l + requestBody, nil
	case kindSummary, kindResend:
		if l != 0 {
			return nil, 0, errNamed
		}
		body := resendBody
		if kind == kindSummary {
			body = summaryBody
		}
		if len(p) < 2+body {
			return nil, 0, errTruncated
		}
		q := p[2 : 2+body]
		en.kind, en.buckets, en.bucket = kind, binary.BigEndian.Uint16(q), binary.BigEndian.Uint16(q[2:])
		if en.buckets == 0 || en.buckets > maxBuckets || en.buckets&(en.buckets-1) != 0 || en.bucket >= en.buckets {
			return nil, 0, errBucket
		}
		if kind == kindSummary {
			en.count, en.digest = binary.BigEndian.Uint16(q[4:]), binary.BigEndian.Uint64(q[6:])
		}
		return nil, off + 2 + body, nil
	}
	return nil, 0, errUnknownKind
}
