package circuit

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
)

// BenchmarkResumablePipe measures the resumable framing alone: one-way
// 32 KiB writes between two ends over an in-memory pipe (no QUIC, no
// sealing), with the process's CPU time per op.
func BenchmarkResumablePipe(b *testing.B) {
	a, d := net.Pipe()
	src, err := NewResumableSource(pipePath{a}, a.LocalAddr(), a.RemoteAddr(), ResumeConfig{Redial: func(context.Context) (Path, error) {
		return nil, errors.New("no redial in a benchmark")
	}})
	if err != nil {
		b.Fatal(err)
	}
	dst := NewResumableDest(pipePath{d}, d.LocalAddr(), d.RemoteAddr(), NewResumeTable(), "s", "echo", ResumeConfig{})
	defer func() {
		src.Close()
		dst.Close()
		src.Wait()
		dst.Wait()
	}()
	benchmarkOneWay(b, closeWriter{src}, dst)
}

// BenchmarkPipe is BenchmarkResumablePipe's floor: the bare pipe.
func BenchmarkPipe(b *testing.B) {
	a, d := net.Pipe()
	defer a.Close()
	defer d.Close()
	benchmarkOneWay(b, a, d)
}

// benchmarkOneWay writes b.N × 32 KiB to w, reads them from r and reports
// the process's CPU time per op.
func benchmarkOneWay(b *testing.B, w io.WriteCloser, r io.Reader) {
	const chunk = 32 << 10
	b.SetBytes(chunk)
	b.ReportAllocs()
	done := make(chan int64, 1)
	go func() {
		buf := make([]byte, chunk)
		n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
		done <- n
	}()
	buf := make([]byte, chunk)
	cpu0 := cpuNS(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	if n := <-done; n != int64(b.N)*chunk {
		b.Fatalf("received %d bytes, want %d", n, int64(b.N)*chunk)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNS(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNS is the process's user plus system CPU time.
func cpuNS(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
