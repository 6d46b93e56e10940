package node

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/links"
)

// TestNonReadingCircuitsThroughRelay relays 1,000 circuits a→r→d to d's
// echo service that write without reading their replies, so every stream
// on both links holds its full window, or is reset as stalled
// (circuit.CloseStalled) once the stalled ones could hold more than half a
// link's window. The honest relay's links stay up, and an idle circuit
// opened before the flood and new circuits opened during it keep carrying
// data intact.
func TestNonReadingCircuitsThroughRelay(t *testing.T) {
	circuits := int64(1000)
	switch {
	case testing.Short():
		circuits = 50
	case raceEnabled:
		circuits = 200
	}
	const window = 32 << 10
	c := newCluster(t, true)
	c.tweak = func(cfg *Config) {
		id, log := cfg.Identity, cfg.Logger
		cfg.NewTransport = func(h links.Handler, role links.Role) (links.Transport, error) {
			return links.NewQUICTransport(links.QUICConfig{
				Identity: id, Role: role, Handler: h, Logger: log,
				MaxStreamWindow: window,
			})
		}
	}
	c.build("a-r", "r-d")
	c.waitRoute("a", "d", 2)
	a := c.nodes["a"]
	since := map[string]time.Time{}
	for _, l := range c.nodes["r"].Links() {
		since[l.Peer] = l.Since
	}

	// An idle circuit, opened before the flood, used after it.
	idle, err := a.Dial(ctxT(t, 10*time.Second), "d", EchoService)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	var (
		wg      sync.WaitGroup
		full    atomic.Int64
		stalled atomic.Int64 // reset as stalled
		failed  atomic.Int64
		stopped = make(chan struct{})
		flood   []net.Conn
	)
	const fill = window * 3 / 2
	for range int(circuits) {
		conn, err := a.DialWith(ctxT(t, 30*time.Second), "d", EchoService, DialOptions{NoResume: true})
		if err != nil {
			t.Fatalf("open flood circuit %d: %v", len(flood), err)
		}
		flood = append(flood, conn)
		wg.Go(func() {
			// A Write returns once flow control took all of it: after
			// the first, the echo has sent data back (fill > a window).
			_, err := conn.Write(make([]byte, fill))
			if err == nil {
				full.Add(1)
				_, err = conn.Write(make([]byte, 1<<20)) // blocks: both ways are full
			}
			select {
			case <-stopped:
			default:
				var re *circuit.ResetError
				if errors.As(err, &re) && re.Code.Reason() == circuit.CloseStalled {
					stalled.Add(1)
					return
				}
				failed.Add(1)
				t.Logf("flood circuit: %v", err)
			}
		})
	}
	defer func() {
		close(stopped)
		for _, conn := range flood {
			conn.Close()
		}
		wg.Wait()
	}()
	for deadline := time.Now().Add(2 * time.Minute); full.Load()+stalled.Load() < circuits && failed.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d flood circuits stalled", full.Load(), circuits)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Work through the relay for three detection windows of the flood.
	msg := bytes.Repeat([]byte("honest "), 8<<10)
	until := time.Now().Add(3 * links.DefaultProbeMisses * links.DefaultProbeInterval)
	rounds := 0
	for time.Now().Before(until) || rounds < 10 {
		if err := roundTrip(t, a, "d", EchoService, msg); err != nil {
			t.Fatalf("round %d during the flood: %v", rounds, err)
		}
		rounds++
	}
	if _, err := idle.Write(msg); err != nil {
		t.Fatalf("idle circuit write: %v", err)
	}
	got := make([]byte, len(msg))
	_ = idle.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(idle, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("idle circuit after the flood: %v", err)
	}
	t.Logf("%d circuits stalled through r (%d of them reset as stalled); %d fresh circuits and the idle one carried %d KiB each", full.Load(), stalled.Load(), rounds, len(msg)>>10)
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d flood circuits failed", n)
	}
	for _, l := range c.nodes["r"].Links() {
		if !l.Since.Equal(since[l.Peer]) {
			t.Fatalf("r's link to %s was re-established during the flood", l.Peer)
		}
		delete(since, l.Peer)
	}
	if len(since) != 0 {
		t.Fatalf("r lost its links to %v", since)
	}
}
