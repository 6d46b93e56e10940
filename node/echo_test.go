package node

import (
	"io"
	"net"
	"runtime"
	"testing"
)

// An echo circuit borrows its copy buffer: opening echo circuits one after
// another does not allocate a buffer for each (16 KiB each, zeroed, which
// was most of what a destination allocated per echo open).
func TestEchoBorrowsItsBuffer(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop a quarter of what is put back")
	}
	round := func() {
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer b.Close()
			echo(b)
		}()
		var p [1]byte
		if _, err := a.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(a, p[:]); err != nil || p[0] != 'x' {
			t.Fatalf("echo: %q, %v", p, err)
		}
		a.Close()
		<-done
	}
	round() // warm the pool
	const rounds = 200
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for range rounds {
		round()
	}
	runtime.ReadMemStats(&ms1)
	if per := (ms1.TotalAlloc - ms0.TotalAlloc) / rounds; per >= echoBufSize/4 {
		t.Fatalf("each echo circuit allocated %d bytes, want < %d (its buffer is pooled)", per, echoBufSize/4)
	}
}
