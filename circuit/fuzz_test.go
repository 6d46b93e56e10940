package circuit

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// The fuzz targets check that decoding never panics, never reads past the
// header, fails only with the package's header errors, and that whatever
// decodes re-encodes to the same bytes.

func FuzzReadOpen(f *testing.F) {
	for _, o := range []*Open{
		sampleOpen(), {Dest: "d", Source: "s"},
		{Dest: "d", Source: "s", Hop: 2, HopLimit: 3, Path: []string{"r1", "r2"}},
		{Dest: "d", Source: "s", Hop: 1, HopLimit: 3, Flags: FlagRecordPath, Path: []string{"s", "r1"}},
	} {
		b, err := o.AppendTo(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 1, 0, 0})
	f.Add([]byte{1, 1, 255, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(append(data, 0xAA))
		o, err := ReadOpen(r, 0)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		re, err := o.AppendTo(nil)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", o, err)
		}
		if !bytes.Equal(re, data[:len(re)]) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data[:len(re)], re)
		}
		if r.Len() != len(data)+1-len(re) {
			t.Fatalf("ReadOpen consumed %d bytes, header is %d", len(data)+1-r.Len(), len(re))
		}
		checkPathChain(t, o)
	})
}

// checkPathChain checks the path rules on a decoded open: CheckPath fails
// only with ErrForgedPath, and an open that passes it from its last relay
// passes it at the next hop once forwarded, and fails it there from any
// other neighbour.
func checkPathChain(t *testing.T, o *Open) {
	peer := o.Source
	if len(o.Path) > 0 {
		peer = o.Path[len(o.Path)-1]
	}
	if err := o.CheckPath(peer); err != nil {
		if !errors.Is(err, ErrForgedPath) {
			t.Fatalf("CheckPath: %v, want ErrForgedPath", err)
		}
		return
	}
	n, err := o.Forward("relay-under-test")
	if err != nil {
		return
	}
	if err := n.CheckPath("relay-under-test"); err != nil {
		t.Fatalf("forwarded %+v fails the next hop's check: %v", n, err)
	}
	if err := n.CheckPath(peer + "x"); !errors.Is(err, ErrForgedPath) {
		t.Fatalf("forwarded %+v passes the check from another neighbour: %v", n, err)
	}
}

func FuzzReadResult(f *testing.F) {
	for _, res := range []Result{
		{Code: Accepted, Node: "d", Path: []string{"r1", "r2"}},
		{Code: HopLimit, Node: "r1", Reason: "hop limit"},
	} {
		b, err := res.AppendTo(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 2, 0, 1, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ReadResult(bytes.NewReader(data), 0)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		re, err := res.AppendTo(nil)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", res, err)
		}
		back, err := ReadResult(bytes.NewReader(re), 0)
		if err != nil || !reflect.DeepEqual(back, res) {
			t.Fatalf("second round trip: %+v, %v; want %+v", back, err, res)
		}
	})
}

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrMalformedHeader) && !errors.Is(err, ErrHeaderTooLarge) && !isEOF(err) {
		t.Fatalf("unexpected error kind: %v", err)
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// chunkReader returns at most n bytes per Read, as a stream hands over
// what has arrived so far.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// ReadOpenAhead decodes what ReadOpen decodes, fails where it fails, and
// its rest is exactly the bytes that followed the header, whatever the
// sizes the stream delivers them in.
// readAhead is the buffer the fuzz target reads into, as node does.
const readAhead = 2048

func FuzzReadOpenAhead(f *testing.F) {
	b, err := sampleOpen().AppendTo(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(b, "first flight"...), uint16(1))
	f.Add(b, uint16(4096))
	f.Add(append(b, make([]byte, 3000)...), uint16(100))
	f.Add([]byte{1, 1, 255, 255}, uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		want, wantErr := ReadOpen(bytes.NewReader(data), 0)
		r := &chunkReader{b: data, n: int(chunk%8192) + 1}
		got, rest, err := ReadOpenAhead(r, 0, make([]byte, readAhead))
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("ReadOpenAhead: %v; ReadOpen: %v", err, wantErr)
		}
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ReadOpenAhead decoded %+v, ReadOpen %+v", got, want)
		}
		hdr, _ := want.AppendTo(nil)
		consumed := len(data) - len(r.b)
		if !bytes.Equal(rest, data[len(hdr):consumed]) {
			t.Fatalf("rest is %d bytes, want the %d read after the %d-byte header", len(rest), consumed-len(hdr), len(hdr))
		}
		if consumed > max(readAhead, len(hdr)) {
			t.Fatalf("read %d bytes, more than %d", consumed, readAhead)
		}
	})
}
