package circuit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkResumablePipe measures the resumable framing alone: one-way
// 32 KiB writes between two ends over an in-memory pipe (no QUIC, no
// sealing), with the process's CPU time per op.
func BenchmarkResumablePipe(b *testing.B) {
	src, dst := pipeResumablePair(b)
	defer func() {
		src.Close()
		dst.Close()
		src.Wait()
		dst.Wait()
	}()
	benchmarkOneWay(b, closeWriter{src}, dst, 32<<10)
}

// BenchmarkPipe is BenchmarkResumablePipe's floor: the bare pipe.
func BenchmarkPipe(b *testing.B) {
	a, d := net.Pipe()
	defer a.Close()
	defer d.Close()
	benchmarkOneWay(b, a, d, 32<<10)
}

// benchmarkOneWay writes b.N × chunk bytes to w, reads them from r and
// reports the process's CPU time per op.
func benchmarkOneWay(b *testing.B, w io.WriteCloser, r io.Reader, chunk int) {
	b.SetBytes(int64(chunk))
	b.ReportAllocs()
	done := make(chan int64, 1)
	go func() {
		buf := make([]byte, chunk)
		// Neither end's shortcut: io.Discard's ReadFrom would read 8
		// KiB at a time with a buffer of its own, r's WriteTo with
		// one of its own size.
		n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, buf)
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
	if n := <-done; n != int64(b.N)*int64(chunk) {
		b.Fatalf("received %d bytes, want %d", n, int64(b.N)*int64(chunk))
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNS(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNS is the process's user plus system CPU time.
func cpuNS(b testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSealedSocket measures a sealed circuit's ends alone: one-way
// 32 KiB writes between a source and a destination whose stream is a
// local socket pair (kernel buffers, no QUIC, no relay).
func BenchmarkSealedSocket(b *testing.B) { benchmarkSocket(b, false) }

// BenchmarkResumableSocket is BenchmarkSealedSocket for a resumable
// circuit: the ratio of the two is what resumption costs at the ends.
func BenchmarkResumableSocket(b *testing.B) { benchmarkSocket(b, true) }

func benchmarkSocket(b *testing.B, resumable bool) {
	src, dst, stop := socketEnds(b, resumable)
	defer stop(func(dst *Resumable) {
		if in := dst.BytesIn(); in > 0 {
			b.ReportMetric(float64(dst.fast.direct.Load())/float64(in), "direct-frac")
			b.ReportMetric(float64(dst.fast.held.Load())/float64(in), "held-frac")
		}
	})
	w, r := closeWriter{src.(interface {
		io.Writer
		CloseWrite() error
	})}, dst
	benchmarkOneWay(b, w, r, 32<<10)
}

// socketEnds opens a sealed circuit over a unix socket pair, resumable
// or not, and returns its source's and destination's ends and stop,
// which closes both (with resumable ends, calls report with the
// destination's once they ended).
func socketEnds(b testing.TB, resumable bool) (src, dst io.ReadWriteCloser, stop func(report func(*Resumable))) {
	k := newSealKeys(b)
	o := resumableOpen(0)
	if !resumable {
		o.Flags = 0
	}
	caller, dest := sealedSocketPair(b, k, o)
	if !resumable {
		return caller, dest, func(func(*Resumable)) {
			caller.Close()
			dest.Close()
		}
	}
	s, err := NewResumableSource(caller, caller.LocalAddr(), caller.RemoteAddr(), ResumeConfig{Redial: func(context.Context) (Path, error) {
		return nil, errors.New("no redial in a benchmark")
	}})
	if err != nil {
		b.Fatal(err)
	}
	d := NewResumableDest(dest, dest.LocalAddr(), dest.RemoteAddr(), NewResumeTable(), "s", "echo", ResumeConfig{})
	return s, d, func(report func(*Resumable)) {
		s.Close()
		d.Close()
		s.Wait()
		d.Wait()
		if report != nil {
			report(d)
		}
	}
}

// sealedSocketPair opens a sealed circuit o over a unix socket pair: the
// source's and the destination's Conns.
func sealedSocketPair(b testing.TB, k *sealKeys, o *Open) (caller, dest *Conn) {
	up, down := unixPair(b)
	type accepted struct {
		c   *Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		o, err := ReadOpen(down, 0)
		if err != nil {
			ch <- accepted{nil, err}
			return
		}
		c, err := k.accept(down, o)
		ch <- accepted{c, err}
	}()
	caller, err := k.dial(o, false, false, false)(context.Background(), up)
	a := <-ch
	if err == nil {
		err = a.err
	}
	if err != nil {
		b.Fatal(err)
	}
	return caller, a.c
}

// unixPair is the two ends of a unix socket pair as links.Streams.
func unixPair(t testing.TB) (a, b unixStream) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ss [2]unixStream
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ss[i] = unixStream{c.(*net.UnixConn)}
	}
	return ss[0], ss[1]
}

// unixStream is a links.Stream over a unix socket.
type unixStream struct{ *net.UnixConn }

func (s unixStream) CloseRead(uint64) { _ = s.UnixConn.CloseRead() }
func (s unixStream) Reset(uint64)     { _ = s.UnixConn.Close() }

// BenchmarkResumableCircuits opens one resumable circuit per op over an
// in-memory pipe and sends 8 MiB on it, 64 KiB per write, after two
// garbage collections (as come between a busy node's bulk circuits): B/op
// is what a circuit allocates, its rings' growth above all.
func BenchmarkResumableCircuits(b *testing.B) {
	const size = 8 << 20
	buf := make([]byte, 64<<10)
	b.SetBytes(size)
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		runtime.GC()
		b.StartTimer()
		src, dst := pipeResumablePair(b)
		done := make(chan int64, 1)
		go func() {
			n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{dst}, make([]byte, len(buf)))
			done <- n
		}()
		for n := 0; n < size; n += len(buf) {
			if _, err := src.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := src.CloseWrite(); err != nil {
			b.Fatal(err)
		}
		if n := <-done; n != size {
			b.Fatalf("received %d bytes, want %d", n, size)
		}
		src.Close()
		dst.Close()
		src.Wait()
		dst.Wait()
	}
}

// pipeResumablePair is a resumable circuit's two ends over an in-memory
// pipe, with the default configuration and no redial.
func pipeResumablePair(b *testing.B) (src, dst *Resumable) {
	a, d := net.Pipe()
	src, err := NewResumableSource(pipePath{a}, a.LocalAddr(), a.RemoteAddr(), ResumeConfig{Redial: func(context.Context) (Path, error) {
		return nil, errors.New("no redial in a benchmark")
	}})
	if err != nil {
		b.Fatal(err)
	}
	dst = NewResumableDest(pipePath{d}, d.LocalAddr(), d.RemoteAddr(), NewResumeTable(), "s", "echo", ResumeConfig{})
	return src, dst
}

// BenchmarkSealedEchoSocket echoes one byte per op over a sealed circuit
// whose stream is a local socket pair, BenchmarkResumableEchoSocket over
// a resumable one: what each costs a small request and its answer at the
// ends, in CPU, goroutines started and latency.
func BenchmarkSealedEchoSocket(b *testing.B)    { benchmarkEchoSocket(b, false) }
func BenchmarkResumableEchoSocket(b *testing.B) { benchmarkEchoSocket(b, true) }

func benchmarkEchoSocket(b *testing.B, resumable bool) {
	c, d, stop := socketEnds(b, resumable)
	defer stop(nil)
	go echoBytes(d)
	buf := []byte{'x'}
	echo := func() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	for range 100 {
		echo()
	}
	created := func() uint64 {
		s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	lat := make([]float64, 0, b.N)
	b.ReportAllocs()
	g0, cpu0 := created(), cpuNS(b)
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		echo()
		lat = append(lat, float64(time.Since(t).Nanoseconds())/1e3)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNS(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(created()-g0)/float64(b.N), "goroutines/op")
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-µs")
}
