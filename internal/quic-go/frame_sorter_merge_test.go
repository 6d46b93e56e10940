package quic

// circuitmesh patch tests: small frames are merged into sorter-owned buffers
// and the entries of a connection are bounded (see frame_sorter.go).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/qerr"
)

// sorterDrain pops everything readable and returns the bytes, calling the
// done callbacks like the receive stream does.
func sorterDrain(t *testing.T, s *frameSorter) []byte {
	t.Helper()
	var out []byte
	base := s.readPos
	for {
		off, data, done := s.Pop()
		if data == nil {
			return out
		}
		if want := base + protocol.ByteCount(len(out)); off != want {
			t.Fatalf("Pop returned offset %d, want %d", off, want)
		}
		out = append(out, data...)
		if done != nil {
			done()
		}
	}
}

func mustPush(t *testing.T, s *frameSorter, stream []byte, start, end int) {
	t.Helper()
	if err := s.Push(stream[start:end], protocol.ByteCount(start), nil); err != nil {
		t.Fatalf("Push [%d,%d): %v", start, end, err)
	}
}

func testStream(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestFrameSorterMergesTinyFrames(t *testing.T) {
	const n = 10000
	for name, offset := range map[string]func(i int) int{
		"in order":      func(i int) int { return i },
		"reverse order": func(i int) int { return n - 1 - i },
	} {
		t.Run(name, func(t *testing.T) {
			s := newFrameSorter()
			stream := testStream(n)
			for i := range n {
				mustPush(t, s, stream, offset(i), offset(i)+1)
			}
			// In order: the first frame uncopied (at the read position,
			// nothing queued), the rest in buffers of at most
			// sorterMaxOwnedBuffer bytes. In reverse order: a buffer
			// takes in the one after it only while that holds at most
			// sorterCopyMax bytes.
			most := 1 + (n+sorterMaxOwnedBuffer-1)/sorterMaxOwnedBuffer
			if name == "reverse order" {
				most = 1 + n/sorterCopyMax
			}
			if got := len(s.queue); got > most {
				t.Fatalf("%d entries for %d 1-byte frames, want at most %d", got, n, most)
			}
			if got := sorterDrain(t, s); !bytes.Equal(got, stream) {
				t.Fatal("data read differs from data sent")
			}
		})
	}
}

func TestFrameSorterMergesInterleavedTinyFrames(t *testing.T) {
	s := newFrameSorter()
	stream := testStream(2000)
	for i := 0; i < len(stream); i += 2 { // even bytes: 1000 entries, 999 gaps
		mustPush(t, s, stream[:], i, i+1)
	}
	if n := len(s.queue); n != 1000 {
		t.Fatalf("%d entries, want 1000", n)
	}
	for i := 1; i < len(stream); i += 2 { // odd bytes fill every gap
		mustPush(t, s, stream, i, i+1)
	}
	// The first byte, at the read position with nothing queued, was taken
	// uncopied; the rest is one buffer.
	if n := len(s.queue); n != 2 {
		t.Fatalf("%d entries after filling the gaps, want 2", n)
	}
	if got := sorterDrain(t, s); !bytes.Equal(got, stream) {
		t.Fatal("data read differs from data sent")
	}
}

func TestFrameSorterTinyFrameCallbackIsCalledAtOnce(t *testing.T) {
	s := newFrameSorter()
	var called int
	// At the read position with nothing queued, a small frame is read
	// next: it is kept uncopied, its callback called when popped.
	if err := s.Push([]byte("a"), 0, func() { called++ }); err != nil {
		t.Fatal(err)
	}
	if called != 0 {
		t.Fatal("done callback of a frame read next called before it was read")
	}
	if err := s.Push([]byte("b"), 1, func() { called++ }); err != nil {
		t.Fatal(err)
	}
	if called != 1 {
		t.Fatalf("done callback called %d times after a small frame was copied, want 1", called)
	}
	big := make([]byte, sorterCopyThreshold)
	if err := s.Push(big, 2, func() { called++ }); err != nil {
		t.Fatal(err)
	}
	if called != 1 {
		t.Fatal("done callback of a large frame called before it was read")
	}
	_, _, done := s.Pop()
	if done == nil {
		t.Fatal("the frame read next came without its done callback")
	}
	done()
	_, _, done = s.Pop()
	if done != nil {
		t.Fatal("an owned buffer came with a done callback")
	}
	_, data, done := s.Pop()
	if len(data) != len(big) || done == nil {
		t.Fatal("the large frame was not kept as it was received")
	}
	done()
	if called != 3 {
		t.Fatal("done callback of the large frame not returned by Pop")
	}
}

func TestFrameSorterOwnedBuffersStayBounded(t *testing.T) {
	s := newFrameSorter()
	stream := testStream(3 * sorterMaxOwnedBuffer)
	for i := 0; i < len(stream); i += 3 {
		mustPush(t, s, stream, i, i+3)
	}
	for _, e := range s.queue {
		if len(e.Data) > sorterMaxOwnedBuffer {
			t.Fatalf("owned buffer of %d bytes", len(e.Data))
		}
	}
	if got := sorterDrain(t, s); !bytes.Equal(got, stream) {
		t.Fatal("data read differs from data sent")
	}
}

func TestFrameSorterRetransmitsOverOwnedBuffers(t *testing.T) {
	s := newFrameSorter()
	stream := testStream(3000)
	for i := 0; i < 1000; i++ {
		mustPush(t, s, stream, i, i+1)
	}
	// A retransmission covering owned data and more, one inside it, and one
	// straddling the end of the received data.
	mustPush(t, s, stream, 500, 1200)
	mustPush(t, s, stream, 10, 20)
	mustPush(t, s, stream, 1100, 2000)
	// Data already read is a duplicate.
	if got := sorterDrain(t, s); !bytes.Equal(got, stream[:2000]) {
		t.Fatal("data read differs from data sent")
	}
	mustPush(t, s, stream, 0, 2500)
	if got := sorterDrain(t, s); !bytes.Equal(got, stream[2000:2500]) {
		t.Fatal("data read differs from data sent")
	}
	if len(s.queue) != 0 || len(s.ownedEnds) != 0 {
		t.Fatalf("%d entries and %d owned ends left", len(s.queue), len(s.ownedEnds))
	}
}

// frameSorterDifferential feeds a frame sorter the frames described by seed
// (random splits of a stream into frames, each sent in a random order, with
// duplicates and overlapping retransmissions, popping now and then) and
// checks that exactly the stream is read, and that the sorter's bookkeeping
// stays consistent.
func frameSorterDifferential(t *testing.T, seed uint64, length int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	stream := testStream(length)
	type frame struct{ start, end int }
	var frames []frame
	rounds := 1 + rng.IntN(3)
	for r := 0; r < rounds; r++ {
		maxLen := []int{1, 3, 40, 600, 1500}[rng.IntN(5)]
		for pos := 0; pos < length; {
			n := 1 + rng.IntN(maxLen)
			frames = append(frames, frame{pos, min(pos+n, length)})
			pos += n
		}
	}
	switch rng.IntN(3) {
	case 0:
		rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
	case 1: // reversed
		for i, j := 0, len(frames)-1; i < j; i, j = i+1, j-1 {
			frames[i], frames[j] = frames[j], frames[i]
		}
	default: // mostly in order, some local reordering
		for i := range frames {
			if j := i + rng.IntN(4); j < len(frames) {
				frames[i], frames[j] = frames[j], frames[i]
			}
		}
	}

	budget := &frameBudget{max: 1 << 62}
	s := newFrameSorter()
	s.budget = budget
	outstanding := 0
	var read []byte
	pop := func() {
		for {
			off, data, done := s.Pop()
			if data == nil {
				return
			}
			if off != protocol.ByteCount(len(read)) {
				t.Fatalf("seed %d: Pop offset %d, read %d bytes", seed, off, len(read))
			}
			read = append(read, data...)
			if done != nil {
				done()
			}
		}
	}
	for i, f := range frames {
		// Give each frame its own buffer, scribbled over once it is released.
		buf := bytes.Clone(stream[f.start:f.end])
		released := false
		outstanding++
		done := func() {
			if released {
				t.Fatalf("seed %d: done callback called twice", seed)
			}
			released = true
			outstanding--
			for i := range buf {
				buf[i] ^= 0xff
			}
		}
		err := s.Push(buf, protocol.ByteCount(f.start), done)
		if err != nil {
			// Only the gap limit may refuse data; that closes the connection.
			if s.gaps.Len() <= protocol.MaxStreamFrameSorterGaps {
				t.Fatalf("seed %d: Push: %v", seed, err)
			}
			return
		}
		if i%32 == 0 || len(s.queue) < 64 {
			checkFrameSorterInvariants(t, s, budget)
		}
		if rng.IntN(8) == 0 {
			pop()
		}
	}
	checkFrameSorterInvariants(t, s, budget)
	pop()
	if !bytes.Equal(read, stream) {
		t.Fatalf("seed %d: read %d bytes differing from the %d sent", seed, len(read), len(stream))
	}
	if outstanding != 0 {
		t.Fatalf("seed %d: %d done callbacks not called", seed, outstanding)
	}
	if budget.entries.Load() != 0 {
		t.Fatalf("seed %d: budget counts %d entries of an empty sorter", seed, budget.entries.Load())
	}
}

func checkFrameSorterInvariants(t *testing.T, s *frameSorter, budget *frameBudget) {
	t.Helper()
	if got := budget.entries.Load(); got != int64(len(s.queue)) {
		t.Fatalf("budget counts %d entries, the queue has %d", got, len(s.queue))
	}
	owned := 0
	for pos, e := range s.queue {
		if pos < s.readPos || len(e.Data) == 0 {
			t.Fatalf("entry at %d (len %d) with read position %d", pos, len(e.Data), s.readPos)
		}
		if e.owned {
			owned++
			if len(e.Data) > sorterMaxOwnedBuffer || e.DoneCb != nil {
				t.Fatalf("owned entry of %d bytes, callback %v", len(e.Data), e.DoneCb != nil)
			}
			if s.ownedEnds[pos+protocol.ByteCount(len(e.Data))] != pos {
				t.Fatal("owned entry missing from ownedEnds")
			}
		}
	}
	if owned != len(s.ownedEnds) {
		t.Fatalf("%d owned entries, %d owned ends", owned, len(s.ownedEnds))
	}
}

func TestFrameSorterDifferential(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 60
	}
	for seed := uint64(0); seed < uint64(n); seed++ {
		frameSorterDifferential(t, seed, 1+int(seed*37%9000))
	}
}

func FuzzFrameSorterDifferential(f *testing.F) {
	f.Add(uint64(1), uint16(100))
	f.Add(uint64(7), uint16(5000))
	f.Fuzz(func(t *testing.T, seed uint64, length uint16) {
		frameSorterDifferential(t, seed, 1+int(length%12000))
	})
}

// FuzzFrameSorterFrames pushes frames decoded from the input (offset and
// length pairs over a fixed stream) and checks that whatever is read is a
// prefix of the stream.
func FuzzFrameSorterFrames(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 1, 1, 0, 0, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		stream := testStream(1 << 14)
		s := newFrameSorter()
		budget := &frameBudget{max: 1 << 62}
		s.budget = budget
		var read []byte
		for len(in) >= 3 {
			off := int(binary.BigEndian.Uint16(in)) % len(stream)
			n := 1 + int(in[2])*int(in[2])/8
			in = in[3:]
			end := min(off+n, len(stream))
			if err := s.Push(bytes.Clone(stream[off:end]), protocol.ByteCount(off), nil); err != nil {
				return
			}
			checkFrameSorterInvariants(t, s, budget)
			if len(in)%5 == 0 {
				read = append(read, popAll(s)...)
			}
		}
		read = append(read, popAll(s)...)
		if !bytes.Equal(read, stream[:len(read)]) {
			t.Fatal("read data differs from the stream")
		}
	})
}

func popAll(s *frameSorter) []byte {
	var out []byte
	for {
		_, data, _ := s.Pop()
		if data == nil {
			return out
		}
		out = append(out, data...)
	}
}

func TestFrameBudgetClosesTheConnection(t *testing.T) {
	budget := newFrameBudget(32 << 20)
	if budget.max != 262144 {
		t.Fatalf("budget for a 32 MiB window: %d entries", budget.max)
	}
	if newFrameBudget(1<<20).max != 65536 {
		t.Fatal("budget below the floor")
	}
	budget = &frameBudget{max: 100}
	a, b := newFrameSorter(), newFrameSorter()
	a.budget, b.budget = budget, budget
	// Every other byte: no merging possible.
	for i := 0; i < 100; i += 2 {
		if err := a.Push([]byte{1}, protocol.ByteCount(i), nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Push([]byte{1}, protocol.ByteCount(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	err := a.Push([]byte{1}, 1000, nil)
	var terr *qerr.TransportError
	if !errors.As(err, &terr) || terr.ErrorCode != qerr.FlowControlError {
		t.Fatalf("Push beyond the budget: %v, want a FLOW_CONTROL_ERROR", err)
	}
	a.drop()
	if got := budget.entries.Load(); got != 50 {
		t.Fatalf("after dropping one sorter the budget counts %d entries, want 50", got)
	}
	if err := b.Push([]byte{1}, 1000, nil); err != nil {
		t.Fatalf("Push after entries were released: %v", err)
	}
}

// BenchmarkFrameSorterPushPop pushes in-order frames of one size and pops
// them, as a stream whose reader keeps up does.
func BenchmarkFrameSorterPushPop(b *testing.B) {
	for _, size := range []int{1, 100, 1200} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			data := make([]byte, size)
			s := newFrameSorter()
			var off protocol.ByteCount
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := s.Push(data, off, func() {}); err != nil {
					b.Fatal(err)
				}
				off += protocol.ByteCount(size)
				if i%8 == 7 { // the reader takes a few frames at a time
					for {
						_, d, done := s.Pop()
						if d == nil {
							break
						}
						if done != nil {
							done()
						}
					}
				}
			}
		})
	}
}
