package circuit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// benchmarkCircuit measures one-way throughput of a circuit over loopback
// QUIC through relays, 32 KiB per op, the relays' splices bounded as a
// node's when bounds is not nil.
func benchmarkCircuit(b *testing.B, relays int, bounds *SpliceBounds) {
	p := newPath(b, relays, nil)
	p.bounds = bounds
	c, err := p.connect(basicOpen(), false)
	if err != nil {
		b.Fatal(err)
	}
	defer c.stop()
	const chunk = 32 << 10
	b.SetBytes(chunk)
	b.ReportAllocs()
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, c.dest)
		done <- n
	}()
	buf := make([]byte, chunk)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.caller.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.caller.CloseWrite()
	if n := <-done; n != int64(b.N)*chunk {
		b.Fatalf("received %d bytes, want %d", n, int64(b.N)*chunk)
	}
}

func BenchmarkCircuitDirect(b *testing.B)  { benchmarkCircuit(b, 0, nil) }
func BenchmarkCircuitRelayed(b *testing.B) { benchmarkCircuit(b, 1, nil) }

// BenchmarkCircuitRelayedBounded: through a relay whose splice keeps a
// node's default bounds (stalled writes, half-closed silence), counters
// and hop stamp.
func BenchmarkCircuitRelayedBounded(b *testing.B) {
	benchmarkCircuit(b, 1, &SpliceBounds{Stall: 2 * time.Minute, HalfClosed: 2 * time.Minute, Hop: 1, Counters: new(SpliceCounters)})
}

// benchmarkSealed is benchmarkCircuit for a sealed circuit through the
// given relays, resumable or not, written chunk bytes at a time: the cost
// of resumption at the ends.
func benchmarkSealed(b *testing.B, relays int, resumable bool, chunk int) {
	benchmarkSealedVia(b, relays, resumable, chunk, 0)
}

// benchmarkSealedVia is benchmarkSealed through relays whose splices copy
// with relayBuf-byte buffers (0: DefaultSpliceBuffer).
func benchmarkSealedVia(b *testing.B, relays int, resumable bool, chunk, relayBuf int) {
	g := &resumeRig{k: newSealKeys(b), table: NewResumeTable()}
	p := newPath(b, relays, nil)
	p.bufSize = relayBuf
	o := resumableOpen(0)
	if !resumable {
		o.Flags = 0
	}
	c, err := p.connectWith(o, g.k.accept, g.k.dial(o, false, false, false))
	if err != nil {
		b.Fatal(err)
	}
	defer c.stop()
	var w io.WriteCloser = closeWriter{c.caller}
	var r io.Reader = c.dest
	if resumable {
		src, err := NewResumableSource(c.caller, c.caller.LocalAddr(), c.caller.RemoteAddr(), ResumeConfig{Redial: func(context.Context) (Path, error) {
			return nil, errors.New("no redial in a benchmark")
		}})
		if err != nil {
			b.Fatal(err)
		}
		dst := NewResumableDest(c.dest, c.dest.LocalAddr(), c.dest.RemoteAddr(), g.table, "s", "echo", ResumeConfig{})
		defer func() {
			src.Close()
			dst.Close()
			src.Wait()
			dst.Wait()
		}()
		w, r = closeWriter{src}, dst
	}
	benchmarkOneWay(b, w, r, chunk)
}

// closeWriter's Close half-closes.
type closeWriter struct {
	c interface {
		io.Writer
		CloseWrite() error
	}
}

func (c closeWriter) Write(p []byte) (int, error) { return c.c.Write(p) }
func (c closeWriter) Close() error                { return c.c.CloseWrite() }

func BenchmarkSealedRelayed(b *testing.B)    { benchmarkSealed(b, 1, false, 32<<10) }
func BenchmarkResumableRelayed(b *testing.B) { benchmarkSealed(b, 1, true, 32<<10) }

// BenchmarkRelayBuffer is a resumable circuit through one relay written
// 64 KiB at a time (as make bench's k1), the relay's splice copying with
// buffers of 32, 64 and 128 KiB: cpu-ns/op is the CPU of the source, the
// relay and the destination together per write.
// go test -run '^$' -bench RelayBuffer -benchtime 1500x -count 4 ./circuit/
func BenchmarkRelayBuffer(b *testing.B) {
	for _, size := range []int{32 << 10, 64 << 10, 128 << 10} {
		b.Run(fmt.Sprintf("%dK", size>>10), func(b *testing.B) {
			benchmarkSealedVia(b, 1, true, 64<<10, size)
		})
	}
}

// BenchmarkSealedDirect64K and BenchmarkResumableDirect64K are a circuit
// between neighbours written 64 KiB at a time, as make bench's transfers:
// the ratio of their cpu-ns/op is what resumption costs both ends.
func BenchmarkSealedDirect64K(b *testing.B)    { benchmarkSealed(b, 0, false, 64<<10) }
func BenchmarkResumableDirect64K(b *testing.B) { benchmarkSealed(b, 0, true, 64<<10) }

// BenchmarkQUICDirect64K is the floor of the 64K benchmarks: a bare
// quic-go stream over the same kind of loopback link, written 64 KiB at a
// time (make bench's direct baseline).
func BenchmarkQUICDirect64K(b *testing.B) { benchmarkQUIC(b, 64<<10) }

// BenchmarkQUICDirect32K is BenchmarkQUICDirect64K written in 32 KiB
// writes: what halving the writes handed to quic-go costs.
func BenchmarkQUICDirect32K(b *testing.B) { benchmarkQUIC(b, 32<<10) }

func benchmarkQUIC(b *testing.B, chunk int) {
	l := newLink(b, nil)
	s, err := l.open()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Write([]byte{0}); err != nil { // the listener sees the stream once data came
		b.Fatal(err)
	}
	d, err := l.accept(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var one [1]byte
	if _, err := io.ReadFull(d, one[:]); err != nil {
		b.Fatal(err)
	}
	defer d.Reset(CloseCancelled)
	benchmarkOneWay(b, closeWriter{s}, d, chunk)
}
