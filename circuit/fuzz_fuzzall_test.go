package circuit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

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

// resumeSeed encodes the resumes FuzzResumeDest sends: each the offset
// the source claims it received and what follows the resume frame on its
// new path.
func resumeSeed(resumes ...any) []byte {
	var b []byte
	for i := 0; i+1 < len(resumes); i += 2 {
		rest := resumes[i+1].([]byte)
		b = binary.BigEndian.AppendUint64(b, resumes[i].(uint64))
		b = binary.BigEndian.AppendUint16(b, uint16(len(rest)))
		b = append(b, rest...)
	}
	return b
}

// FuzzResumeDest hands a destination that holds a live circuit, having
// received "abc" and sent "xyz", resume frames naming the circuit, each
// on a new path with any offset and any frames after it (b: resumeSeed's
// encoding), as a source or a relay that forges for it may send them.
// Every resume is taken or refused with ErrIntegrity or ErrResumeRefused;
// one claiming more than the 3 positions this end sent is refused, with
// ErrIntegrity while the circuit lives; Reads return "abc" first and only the package's errors;
// the circuit ends and leaves nothing in the table.
func FuzzResumeDest(f *testing.F) {
	f.Add(resumeSeed(uint64(0), []byte{frameData, 0, 1, 'd'}))
	f.Add(resumeSeed(uint64(3), []byte{frameAck, 0, 0, 0, 0, 0, 0, 0, 3, frameFin}))
	f.Add(resumeSeed(uint64(4), []byte(nil)))
	f.Add(resumeSeed(uint64(1<<63), []byte(nil)))
	f.Add(resumeSeed(uint64(0), []byte(nil), uint64(0), []byte(nil), uint64(0), []byte{framePing}))
	f.Add(resumeSeed(uint64(2), []byte{frameAck, 0, 0, 0, 0, 0, 0, 0, 9}, uint64(1), []byte{frameData, 0, 0}))
	var id [idLen]byte
	id[0] = 7
	f.Fuzz(func(t *testing.T, b []byte) {
		table := NewResumeTable()
		first := newRecPath(append(append([]byte{frameHello}, id[:]...), frameData, 0, 3, 'a', 'b', 'c'), 0)
		defer first.Close()
		r := NewResumableDest(first, Addr{"d", "echo"}, Addr{"s", "echo"}, table, "s", "echo",
			ResumeConfig{Window: 1 << 10, Timeout: 50 * time.Millisecond, ProgressTimeout: time.Second})
		waitRegistered(t, table, 1)
		if _, err := r.Write([]byte("xyz")); err != nil {
			t.Fatalf("write: %v", err)
		}
		waitFor(t, func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.sentMost == 3
		})
		for resumes := 0; len(b) >= 10 && resumes < 8; resumes++ {
			off := binary.BigEndian.Uint64(b)
			n := min(int(binary.BigEndian.Uint16(b[8:])), len(b)-10)
			frame := binary.BigEndian.AppendUint64(append([]byte{frameResume}, id[:]...), off)
			path := bytesPath{bytes.NewReader(append(frame, b[10:10+n]...))}
			b = b[10+n:]
			got, err := table.Resume(path, "s", "echo", time.Now().Add(time.Second))
			r.mu.Lock()
			ended := r.ended // a circuit that ended refuses every resume with ErrResumeRefused
			r.mu.Unlock()
			switch {
			case err != nil && !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrResumeRefused):
				t.Fatalf("resume from %d: %v is neither ErrIntegrity nor ErrResumeRefused", off, err)
			case err == nil && got != r:
				t.Fatalf("resume from %d took another circuit", off)
			case err == nil && off > 3:
				t.Fatalf("resume from %d taken, beyond the 3 positions sent", off)
			case err != nil && off > 3 && !ended && !errors.Is(err, ErrIntegrity):
				t.Fatalf("resume from %d, beyond the 3 positions sent: %v, want ErrIntegrity", off, err)
			}
		}
		_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
		var read []byte
		buf := make([]byte, 64)
		for len(read) < 3 {
			n, err := r.Read(buf)
			read = append(read, buf[:n]...)
			if err != nil {
				if err != io.EOF && !circuitError(err) {
					t.Fatalf("read: %v is none of the package's errors", err)
				}
				break
			}
		}
		if !bytes.HasPrefix(read, []byte("abc")) && !bytes.HasPrefix([]byte("abc"), read) {
			t.Fatalf("read %q, not what came before the resumes first", read)
		}
		r.Reset(CloseCancelled)
		r.Wait()
		if table.Len() != 0 {
			t.Fatal("an ended circuit stayed in the table")
		}
	})
}
