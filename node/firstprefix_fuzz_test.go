package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// chunkStream gives its bytes at most chunk at a time, then times out,
// noting the largest read and the bytes given.
type chunkStream struct {
	links.Stream
	data    []byte
	chunk   int
	given   int
	largest int
}

func (s *chunkStream) SetReadDeadline(time.Time) error { return nil }

func (s *chunkStream) Read(p []byte) (int, error) {
	s.largest = max(s.largest, len(p))
	if len(s.data) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p, s.data[:min(len(s.data), s.chunk)])
	s.data = s.data[n:]
	s.given += n
	return n, nil
}

// FuzzReadFirstPrefix reads the first handshake message of an open a
// neighbour relays, the bytes that came with the header (rest) and the
// stream's after them however the source split them: a relay reads
// nothing of a plain open, and of a sealed one exactly the whole first
// message (its 2-byte length and the bytes it declares), no byte lost,
// repeated or read beyond it; a message that stops coming fails with the
// stream's error; and the buffers read into grow with what arrives, not
// with the length a message declares.
func FuzzReadFirstPrefix(f *testing.F) {
	f.Add(true, []byte{0, 3, 1}, []byte("abcdef"), uint8(1))
	f.Add(true, []byte(nil), []byte{0, 1, 2, 'x'}, uint8(2))
	f.Add(true, []byte{0xff, 0xff, 1}, []byte("xy"), uint8(1))
	f.Add(true, []byte{0}, []byte{0}, uint8(5))
	f.Add(true, []byte{0, 0, 0, 0}, []byte(nil), uint8(0))
	f.Add(false, []byte{1, 2}, []byte("abc"), uint8(3))
	f.Add(true, []byte{0x02, 0x00, 0}, bytes.Repeat([]byte{7}, 600), uint8(255))
	n := &Node{cfg: Config{Limits: Limits{HeaderTimeout: time.Second}}}
	f.Fuzz(func(t *testing.T, sealed bool, rest, data []byte, chunk uint8) {
		o := &circuit.Open{}
		if sealed {
			o.Flags = circuit.FlagSealed
		}
		rest = slices.Clip(rest)
		in := bytes.Clone(rest)
		s := &chunkStream{data: bytes.Clone(data), chunk: max(int(chunk), 1)}
		out, err := n.readFirstPrefix(s, o, rest)
		all := append(bytes.Clone(in), data...)
		if s.largest > 2*max(len(all), 512)+1024 {
			t.Fatalf("read into %d bytes for %d that came", s.largest, len(all))
		}
		want := len(in)
		if sealed {
			want = max(want, 3)
			if len(all) >= 2 {
				want = max(want, 2+int(binary.BigEndian.Uint16(all)))
			}
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("error %v is not the stream's", err)
			}
			if len(all) >= want {
				t.Fatalf("the %d bytes of a %d-byte first message came, yet: %v", len(all), want, err)
			}
			return
		}
		if len(out) != want || !bytes.Equal(out, all[:want]) {
			t.Fatalf("got %d bytes %x, want the first %d of %x", len(out), out, want, all)
		}
		if s.given != want-len(in) {
			t.Fatalf("read %d bytes of the stream, the message needs %d", s.given, want-len(in))
		}
	})
}
