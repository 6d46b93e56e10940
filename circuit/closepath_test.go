package circuit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// teeStream records, while on, the bytes read from the stream it wraps.
type teeStream struct {
	links.Stream
	on  *atomic.Bool
	mu  *sync.Mutex
	got *[]byte
}

func (s teeStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if n > 0 && s.on.Load() {
		s.mu.Lock()
		*s.got = append(*s.got, b[:n]...)
		s.mu.Unlock()
	}
	return n, err
}

// countRecords counts the sealed records (u16 length, then that many
// bytes) in b, which must hold whole records only.
func countRecords(t *testing.T, b []byte) int {
	t.Helper()
	n := 0
	for len(b) > 0 {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			t.Fatalf("%d bytes left that are no whole record", len(b))
		}
		b = b[2+int(binary.BigEndian.Uint16(b)):]
		n++
	}
	return n
}

// A source whose application closed ends its side of the path with its
// fin: the fin's record, then the end record and FIN, and nothing after,
// since the destination ends the circuit at that fin and the path's clean
// end, and its own clean end tells the source it took everything. No
// acknowledgement of the destination's fin follows.
func TestResumableCloseEndsPathWithFin(t *testing.T) {
	g := newResumeRig(t)
	var (
		on  atomic.Bool
		mu  sync.Mutex
		got []byte
	)
	g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		return teeStream{Stream: in, on: &on, mu: &mu, got: &got}, out
	}
	_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
	buf := make([]byte, 1)
	if _, err := src.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(dst, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(src, buf); err != nil {
		t.Fatal(err)
	}
	// The acknowledgement of "y" goes once its delay ran out: once the
	// destination has it, the relay has taken it from the source, which
	// owes nothing more but its fin.
	waitFor(t, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.credit == 1
	})
	on.Store(true)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(dst); err != nil || len(rest) != 0 {
		t.Fatalf("destination read %q, %v after the source's close; want the end of stream", rest, err)
	}
	dst.Close()
	waitEnded(t, src)
	waitEnded(t, dst)
	for _, r := range []*Resumable{src, dst} {
		r.mu.Lock()
		clean, err := r.cleanClose, r.err
		r.mu.Unlock()
		if !clean || errors.Is(err, ErrIntegrity) {
			t.Errorf("an end did not end cleanly: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if n := countRecords(t, got); n != 2 {
		t.Errorf("the source sent %d records after its close, want 2 (its fin, its end of stream)", n)
	}
}

// A source that closed its side of the path with its fin still resumes
// when that path dies before the destination had the fin: the fin goes
// again on the new path, which ends the same way, and the destination
// reads every byte once and then the end of stream.
func TestResumableClosedPathResumes(t *testing.T) {
	g := newResumeRig(t)
	var held atomic.Bool
	g.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		return in, wedgeStream{out, &held}
	}
	p, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
	msg := bytes.Repeat([]byte("m"), 100_000)
	if _, err := src.Write(msg); err != nil {
		t.Fatal(err)
	}
	dst.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(dst, make([]byte, len(msg))); err != nil {
		t.Fatal(err)
	}
	// Everything acknowledged: the close's fin goes with the path's end.
	waitFor(t, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.acked == int64(len(msg))
	})
	held.Store(true)
	if _, err := src.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	src.Close()
	waitFor(t, func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return src.wclosed == src.gen+1
	})
	crash(p)
	got, err := io.ReadAll(dst)
	if err != nil || string(got) != "tail" {
		t.Fatalf("destination read %q, %v after the resume; want %q and the end of stream", got, err, "tail")
	}
	dst.Close()
	waitEnded(t, src)
	waitEnded(t, dst)
	if src.Resumes() != 1 {
		t.Errorf("source resumed %d times, want 1", src.Resumes())
	}
	src.mu.Lock()
	clean, serr := src.cleanClose, src.err
	src.mu.Unlock()
	if !clean {
		t.Errorf("the source did not end cleanly: %v", serr)
	}
}

// An end whose application closed takes the other end's clean end of the
// path as the circuit's, with or without that end's fin: it wants nothing
// more from it. One whose application still reads needs the fin first.
func TestResumablePathEndAfterClose(t *testing.T) {
	for _, appClosed := range []bool{true, false} {
		r := newResumable(newRecPath(nil, 0), Addr{"s", "echo"}, Addr{"d", "echo"}, ResumeConfig{})
		r.mu.Lock()
		r.appClosed, r.finQueued = appClosed, appClosed
		r.pathEndedLocked(r.gen)
		ended, clean, err := r.ended, r.cleanClose, r.err
		r.mu.Unlock()
		switch {
		case !ended:
			t.Errorf("closed %v: the circuit did not end", appClosed)
		case appClosed && (!clean || errors.Is(err, ErrIntegrity)):
			t.Errorf("closed: the path's clean end failed the circuit: %v", err)
		case !appClosed && !errors.Is(err, ErrIntegrity):
			t.Errorf("open: a path that ended without the fin gave %v, want ErrIntegrity", err)
		}
	}
}
