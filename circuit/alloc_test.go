package circuit

import (
	"io"
	"testing"
	"time"
)

// memStream is an allocation-free links.Stream: Read serves left bytes
// (whatever is in the buffer) then io.EOF, Write discards.
type memStream struct{ left int }

func (m *memStream) Read(p []byte) (int, error) {
	if m.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), m.left)
	m.left -= n
	return n, nil
}

func (m *memStream) Write(p []byte) (int, error)      { return len(p), nil }
func (m *memStream) CloseWrite() error                { return nil }
func (m *memStream) CloseRead(uint64)                 {}
func (m *memStream) Reset(uint64)                     {}
func (m *memStream) Close() error                     { return nil }
func (m *memStream) SetDeadline(time.Time) error      { return nil }
func (m *memStream) SetReadDeadline(time.Time) error  { return nil }
func (m *memStream) SetWriteDeadline(time.Time) error { return nil }

// TestSpliceZeroAllocsPerChunk checks that the splice's cost in
// allocations does not grow with the number of chunks copied: buffers are
// pooled and the copy loop allocates nothing.
func TestSpliceZeroAllocsPerChunk(t *testing.T) {
	allocs := func(chunks int) float64 {
		a, b := &memStream{}, &memStream{}
		return testing.AllocsPerRun(200, func() {
			a.left, b.left = chunks*DefaultSpliceBuffer, 0
			if _, err := Splice(a, b, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
	one, many := allocs(1), allocs(1024)
	t.Logf("allocations per splice: %.2f for 1 chunk, %.2f for 1024 chunks", one, many)
	// The per-splice count varies by one with scheduling (goroutine and
	// wait-queue bookkeeping); one allocation per chunk would add 1023.
	if many-one >= 2 {
		t.Errorf("1023 more chunks cost %.2f more allocations, want 0", many-one)
	}
}

// BenchmarkSpliceMem measures the splice itself: 1 MiB per op between
// allocation-free streams.
func BenchmarkSpliceMem(b *testing.B) {
	const size = 1 << 20
	b.SetBytes(size)
	b.ReportAllocs()
	x, y := &memStream{}, &memStream{}
	for b.Loop() {
		x.left, y.left = size, 0
		if _, err := Splice(x, y, 0); err != nil {
			b.Fatal(err)
		}
	}
}
