package circuit

import (
	"io"
	"testing"
)

// benchmarkCircuit measures one-way throughput of a circuit over loopback
// QUIC through relays, 32 KiB per op.
func benchmarkCircuit(b *testing.B, relays int) {
	p := newPath(b, relays, nil)
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

func BenchmarkCircuitDirect(b *testing.B)  { benchmarkCircuit(b, 0) }
func BenchmarkCircuitRelayed(b *testing.B) { benchmarkCircuit(b, 1) }
