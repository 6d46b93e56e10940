package circuit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/circuitmesh/circuitmesh/circuit/seal"
)

// FuzzReadHandshake reads handshake messages from any byte stream, a byte
// at a time: each is the framed body as sent (AppendMessage), never more
// than the stream holds, and a stream cut short ends with io.EOF before a
// message or io.ErrUnexpectedEOF inside one.
func FuzzReadHandshake(f *testing.F) {
	f.Add(seal.AppendMessage(nil, []byte("first")))
	f.Add(append(seal.AppendMessage(nil, bytes.Repeat([]byte{1}, 300)), seal.AppendMessage(nil, nil)...))
	f.Add([]byte{0xff, 0xff, 1, 2})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		used := 0
		for {
			msg, err := ReadHandshake(iotest.OneByteReader(r))
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v is neither io.EOF nor io.ErrUnexpectedEOF", err)
				}
				if errors.Is(err, io.EOF) && used != len(b) {
					t.Fatalf("io.EOF with %d of %d bytes read", used, len(b))
				}
				return
			}
			framed := seal.AppendMessage(nil, msg)
			if !bytes.Equal(framed, b[used:used+len(framed)]) {
				t.Fatalf("message %x reframes to %x, sent %x", msg, framed, b[used:used+len(framed)])
			}
			used += len(framed)
			if used != len(b)-r.Len() {
				t.Fatalf("read %d bytes for messages of %d", len(b)-r.Len(), used)
			}
		}
	})
}

// A handshake message's length prefix claims up to 64 KiB: the reader
// holds memory for the bytes that came, not for the claim. A peer that
// sends the two bytes of a 64 KiB claim and then nothing (here: ends the
// stream) makes ReadHandshake allocate far less than 64 KiB.
func TestReadHandshakeAllocatesWhatArrives(t *testing.T) {
	claim := binary.BigEndian.AppendUint16(nil, 0xffff)
	const runs = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := ReadHandshake(bytes.NewReader(append(claim, 1, 2, 3))); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("claim of 64 KiB with 3 bytes: %v, want io.ErrUnexpectedEOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 8<<10 {
		t.Fatalf("a 64 KiB claim with 3 bytes allocated %d bytes a read, want under 8 KiB", per)
	}
	// The whole message still arrives.
	body := bytes.Repeat([]byte{7}, 0xffff)
	got, err := ReadHandshake(iotest.HalfReader(bytes.NewReader(seal.AppendMessage(nil, body))))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("64 KiB message: %d bytes, %v", len(got), err)
	}
}
