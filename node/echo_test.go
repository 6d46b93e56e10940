package node

import (
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
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

// The echo service answers a circuit on the goroutine that read its open:
// no hand-off to an Accept loop and from it to a goroutine per circuit
// between the open's early data arriving and its echo leaving (two
// wake-ups on the critical path of every open+echo).
func TestEchoServedWhereDelivered(t *testing.T) {
	c := newCluster(t, false)
	c.build("a-b")
	c.waitRoute("a", "b", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.nodes["a"].DialWith(ctx, "b", EchoService, DialOptions{Early: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echoOne(conn); err != nil {
		t.Fatal(err)
	}
	// The echo now waits for more on its circuit: find its goroutine.
	var echoes []string
	buf := make([]byte, 1<<20)
	for range 100 {
		stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
		echoes = echoes[:0]
		for _, g := range stacks {
			if strings.Contains(g, "node.echo(") {
				echoes = append(echoes, g)
			}
		}
		if len(echoes) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(echoes) != 1 {
		t.Fatalf("%d goroutines run the echo of the one circuit open, want 1", len(echoes))
	}
	if !strings.Contains(echoes[0], "node.(*Node).handleStream(") {
		t.Fatalf("the echo runs on a goroutine other than the one that read the open:\n%s", echoes[0])
	}
}
