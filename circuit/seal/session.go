package seal

import (
	"encoding/binary"
	"fmt"

	"github.com/flynn/noise"
)

// Record layout and limits.
const (
	// MaxData is the most payload one record carries unless its reader
	// stated in the handshake that it reads large records; every end
	// reads records of this size.
	MaxData = 32 << 10
	// MaxLargeData is the most payload one record carries to a reader
	// that stated it reads large records: 64 KiB less 32 bytes, so that
	// a record's length (type, data and tag: at most 65,521) fits its u16
	// prefix.
	MaxLargeData = 1<<16 - 32
	// Overhead is what a record adds to its data: length, type and tag.
	Overhead = 2 + 1 + 16
	// MaxRecord is the largest record every end reads.
	MaxRecord = MaxData + Overhead
	// MaxLargeRecord is the largest record on the wire.
	MaxLargeRecord = MaxLargeData + Overhead
	// RekeyEvery: both ends rekey a direction after this many records.
	RekeyEvery = 1 << 16

	// RecordData carries payload; RecordEnd ends the direction;
	// RecordRefused ends it too, carrying the reason the destination
	// refused the circuit after the handshake (its authorization policy
	// does not allow the source it authenticated).
	RecordData    = 0
	RecordEnd     = 1
	RecordRefused = 2
)

// Session holds the keys of an established circuit: one CipherState per
// direction, each with its own counter (the nonce), so nonces never repeat.
// A Session is not safe for concurrent use of the same direction; the two
// directions may be used concurrently.
type Session struct {
	send, recv   *noise.CipherState
	nsend, nrecv uint64
	rekeyEvery   uint64
	// The most data per record this end seals (what the other end
	// stated it reads) and opens (what this end stated it reads).
	maxSend, maxRecv int
}

func newSession(send, recv *noise.CipherState) *Session {
	return &Session{send: send, recv: recv, rekeyEvery: RekeyEvery, maxSend: MaxData, maxRecv: MaxData}
}

// MaxSend is the most data one record this end seals may carry: MaxData,
// or MaxLargeData once the other end stated in the handshake that it
// reads large records.
func (s *Session) MaxSend() int { return s.maxSend }

// MaxRecv is the most data a record this end opens may carry: MaxData,
// or MaxLargeData when this end stated in the handshake that it reads
// large records. Open refuses larger ones.
func (s *Session) MaxRecv() int { return s.maxRecv }

// Seal appends one framed record of type typ carrying data (at most
// MaxSend bytes) to dst, encrypting in place: give dst the capacity for
// len(data)+Overhead more bytes to avoid an allocation.
func (s *Session) Seal(dst []byte, typ byte, data []byte) ([]byte, error) {
	if len(data) > s.maxSend {
		return dst, fmt.Errorf("seal: record of %d bytes exceeds %d", len(data), s.maxSend)
	}
	start := len(dst)
	dst = append(dst, 0, 0, typ)
	dst = append(dst, data...)
	rec, err := s.SealInPlace(dst[start:])
	if err != nil {
		return dst[:start], err
	}
	if &rec[0] != &dst[start] {
		// SealInPlace had to grow the buffer.
		return append(dst[:start], rec...), nil
	}
	return dst[:start+len(rec)], nil
}

// RecordHead is what a record laid out for SealInPlace starts with: the
// length (filled in by SealInPlace) and the type.
const RecordHead = 3

// SealInPlace seals the record laid out in rec: RecordHead bytes (the type
// at rec[2]) then the data, at most MaxSend bytes. It encrypts in place and
// returns the framed record, which is rec grown by the tag when its
// capacity allows (Overhead - RecordHead more bytes), else a new buffer.
// The caller that assembles the data in rec saves Seal's copy.
func (s *Session) SealInPlace(rec []byte) ([]byte, error) {
	if len(rec) < RecordHead || len(rec)-RecordHead > s.maxSend {
		return rec, fmt.Errorf("seal: record of %d bytes outside [0, %d]", len(rec)-RecordHead, s.maxSend)
	}
	out, err := s.send.Encrypt(rec[2:2], nil, rec[2:])
	if err != nil {
		return rec, fmt.Errorf("seal: %w", err)
	}
	if s.nsend++; s.nsend%s.rekeyEvery == 0 {
		s.send.Rekey()
	}
	if &out[0] != &rec[2] {
		// Encrypt had to grow the buffer.
		rec = append(make([]byte, 2, 2+len(out)), out...)
	}
	binary.BigEndian.PutUint16(rec, uint16(len(out)))
	return rec[:2+len(out)], nil
}

// SealTo seals the record whose type and data are plain (the type first,
// then at most MaxSend bytes) into dst's memory, which needs the capacity
// for len(plain)+Overhead-1 bytes, and returns the framed record. plain
// is read, not changed: it is encrypted straight into dst, without the
// copy of Seal, and may lie in a buffer that keeps it.
func (s *Session) SealTo(dst, plain []byte) ([]byte, error) {
	if len(plain) < 1 || len(plain)-1 > s.maxSend {
		return nil, fmt.Errorf("seal: record of %d bytes outside [0, %d]", len(plain)-1, s.maxSend)
	}
	if cap(dst) < len(plain)+Overhead-1 {
		return nil, fmt.Errorf("seal: %d bytes of room for a record of %d", cap(dst), len(plain)+Overhead-1)
	}
	out, err := s.send.Encrypt(dst[2:2], nil, plain)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if s.nsend++; s.nsend%s.rekeyEvery == 0 {
		s.send.Rekey()
	}
	binary.BigEndian.PutUint16(dst[:2], uint16(len(out)))
	return dst[:2+len(out)], nil
}

// Open decrypts one record's ciphertext (without its length prefix) in
// place and returns its type and data. Any failure wraps ErrIntegrity,
// among them a record of more than MaxRecv bytes of data; the session is
// then unusable for reading.
func (s *Session) Open(ct []byte) (byte, []byte, error) {
	if len(ct) > 1+s.maxRecv+16 {
		return 0, nil, fmt.Errorf("%w: record %d of %d bytes exceeds %d", ErrIntegrity, s.nrecv, len(ct)-17, s.maxRecv)
	}
	pt, err := s.recv.Decrypt(ct[:0], nil, ct)
	if err != nil || len(pt) == 0 {
		return 0, nil, fmt.Errorf("%w: record %d does not authenticate", ErrIntegrity, s.nrecv)
	}
	if s.nrecv++; s.nrecv%s.rekeyEvery == 0 {
		s.recv.Rekey()
	}
	if pt[0] > RecordRefused || pt[0] == RecordEnd && len(pt) != 1 {
		return 0, nil, fmt.Errorf("%w: record %d has type %d", ErrIntegrity, s.nrecv, pt[0])
	}
	return pt[0], pt[1:], nil
}
