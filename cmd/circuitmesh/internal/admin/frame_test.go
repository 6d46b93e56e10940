package admin

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFramesCarryDataEndAndReset(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 3*maxFrameData+7)
	for _, tc := range []struct {
		name string
		end  func(io.Writer) error
		want func(error) bool
	}{
		{"clean end", func(w io.Writer) error { return writeFrame(w, frameEnd, nil) },
			func(err error) bool { return err == nil }}, // io.ReadAll hides io.EOF
		{"reset", func(w io.Writer) error { return writeFrame(w, frameError, []byte("link lost")) },
			func(err error) bool {
				return errors.Is(err, ErrCircuitReset) && bytes.Contains([]byte(err.Error()), []byte("link lost"))
			}},
		{"cut", func(io.Writer) error { return nil },
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	} {
		var buf bytes.Buffer
		if _, err := (frameWriter{&buf}).Write(data); err != nil {
			t.Fatal(err)
		}
		if err := tc.end(&buf); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(&frameReader{r: bufio.NewReader(&buf)})
		if !bytes.Equal(got, data) || !tc.want(err) {
			t.Errorf("%s: read %d of %d bytes, err %v", tc.name, len(got), len(data), err)
		}
	}
}

func FuzzFrameReader(f *testing.F) {
	var b bytes.Buffer
	_ = writeFrame(&b, frameData, []byte("hello"))
	_ = writeFrame(&b, frameError, []byte("reset"))
	f.Add(b.Bytes())
	f.Add([]byte{frameEnd, 0, 0, 0, 0})
	f.Add([]byte{frameData, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{9, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(&frameReader{r: bufio.NewReader(bytes.NewReader(in))})
		if err == nil && len(got) > len(in) {
			t.Fatalf("read %d bytes from %d", len(got), len(in))
		}
		if err == nil && !bytes.Contains(in, []byte{frameEnd, 0, 0, 0, 0}) {
			t.Fatalf("clean end without an end frame")
		}
	})
}
