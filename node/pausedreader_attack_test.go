package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
)

// TestAttackStallFloodSparesPausedReader: h's application at d
// reads the first byte of h's circuit, then pauses (backpressure, as
// any net.Conn reader may apply) while h has 256 KiB more to send: 64 KiB
// wait in the stream window, well below the link's stalled allowance
// (half of a 1 MiB link window), and without an attack the circuit
// waits as long as the reader pauses and delivers everything after. a, a
// member with a valid certificate whose circuits reach d over the same
// link (through r), opens circuits to d that it fills and whose replies
// it never reads, keeping new ones stalled. d's reclaim resets the
// longest stalled circuit of the link first: h's, whose reader only
// paused, while a keeps opening new ones. The paused reader should keep
// its circuit: a's flood should cost a's circuits, not h's.
func TestAttackStallFloodSparesPausedReader(t *testing.T) {
	const (
		streamWindow = 64 << 10
		linkWindow   = 1 << 20
		attackers    = 24
		honestBytes  = 256 << 10
	)
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		cfg.Limits.StreamWindow = streamWindow
		cfg.Limits.LinkWindow = linkWindow
		cfg.Limits.ReaderStall = 500 * time.Millisecond
	}
	c.build("a-r", "h-r", "r-d")
	c.waitRoute("a", "d", 2)
	c.waitRoute("h", "d", 2)
	d, a, h := c.nodes["d"], c.nodes["a"], c.nodes["h"]
	startSink(t, d)

	// The paused reader at d: one byte, then nothing until resume.
	lis, err := d.Listen("paused")
	if err != nil {
		t.Fatal(err)
	}
	resume := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			got <- err
			return
		}
		defer conn.Close()
		one := make([]byte, 1)
		if _, err := io.ReadFull(conn, one); err != nil {
			got <- fmt.Errorf("first byte: %w", err)
			return
		}
		<-resume
		rest, err := io.ReadAll(conn)
		if err != nil {
			got <- fmt.Errorf("the paused reader's circuit, after %d bytes: %w", 1+len(rest), err)
			return
		}
		if 1+len(rest) != honestBytes {
			got <- fmt.Errorf("the paused reader got %d bytes, want %d", 1+len(rest), honestBytes)
			return
		}
		got <- nil
	}()
	hc, err := h.DialWith(ctxT(t, 10*time.Second), "d", "paused", DialOptions{NoResume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	wrote := make(chan error, 1)
	go func() {
		_, err := hc.Write(bytes.Repeat([]byte("h"), honestBytes))
		if err == nil {
			err = hc.CloseWrite()
		}
		wrote <- err
	}()
	time.Sleep(2 * time.Second) // h's circuit waits on its paused reader

	// The flood, as TestStalledReadersCannotStarveALink's.
	var attack sync.WaitGroup
	var conns []Conn
	chunk := make([]byte, 16<<10)
	for i := range 2 * attackers {
		service := "sink"
		if i%2 == 1 {
			service = EchoService
		}
		conn, err := a.DialWith(ctxT(t, 10*time.Second), "d", service, DialOptions{NoResume: true})
		if err != nil {
			continue
		}
		conns = append(conns, conn)
		attack.Go(func() {
			for {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
			}
		})
	}
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
		attack.Wait()
	}()
	time.Sleep(5 * time.Second)
	close(resume)
	select {
	case err := <-got:
		werr := <-wrote
		var re *circuit.ResetError
		if err != nil || werr != nil {
			stalled := errors.As(err, &re) && re.Code.Reason() == circuit.CloseStalled ||
				errors.As(werr, &re) && re.Code.Reason() == circuit.CloseStalled
			t.Errorf("a's stalled circuits got h's paused circuit reset (reset as stalled: %v): reader: %v; h's write: %v", stalled, err, werr)
		}
	case <-time.After(time.Minute):
		t.Fatal("the paused reader got neither its bytes nor an error within a minute")
	}
}
