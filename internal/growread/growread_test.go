package growread

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadWhole(t *testing.T) {
	want := bytes.Repeat([]byte("circuit"), 3000)
	for _, start := range []int{0, 1, 512, 1 << 20} {
		got, err := Read(iotest.OneByteReader(bytes.NewReader(want)), len(want), start)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("start %d: read %d bytes, %v; want %d bytes", start, len(got), err, len(want))
		}
	}
	// The last bytes may come with io.EOF.
	got, err := Read(iotest.DataErrReader(bytes.NewReader(want)), len(want), 64)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("bytes with io.EOF: read %d bytes, %v", len(got), err)
	}
}

func TestReadShort(t *testing.T) {
	if _, err := Read(bytes.NewReader(make([]byte, 10)), 11, 4); !errors.Is(err, io.EOF) {
		t.Fatalf("10 bytes of 11: %v, want io.EOF", err)
	}
	boom := errors.New("boom")
	if _, err := Read(iotest.ErrReader(boom), 1, 4); !errors.Is(err, boom) {
		t.Fatalf("reader error: %v, want it returned", err)
	}
}

// A claim of 64 KiB followed by 3 bytes holds a buffer of start bytes,
// not 64 KiB.
func TestReadHoldsWhatCame(t *testing.T) {
	var held int
	r := readerFunc(func(p []byte) (int, error) {
		held = cap(p)
		if held > 0 && len(p) >= 3 {
			return 3, io.ErrUnexpectedEOF
		}
		return 0, io.ErrUnexpectedEOF
	})
	if _, err := Read(r, 64<<10, 512); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("stalled read: %v", err)
	}
	if held > 512 {
		t.Fatalf("a 64 KiB claim with 3 bytes offered the reader %d bytes, want at most 512", held)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
