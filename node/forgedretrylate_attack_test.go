package node

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/circuit"
	"github.com/circuitmesh/circuitmesh/circuit/seal"
	"github.com/circuitmesh/circuitmesh/links"
)

// heldStream stands in for one side of a relayed circuit the relay took
// over: reads block until it ends, writes are dropped.
type heldStream struct {
	links.Stream
	stop chan struct{}
	once sync.Once
}

func newHeldStream(s links.Stream) *heldStream {
	return &heldStream{Stream: s, stop: make(chan struct{})}
}
func (s *heldStream) Read(p []byte) (int, error) {
	<-s.stop
	return 0, io.EOF
}
func (s *heldStream) Write(p []byte) (int, error) { return len(p), nil }
func (s *heldStream) end()                        { s.once.Do(func() { close(s.stop) }) }
func (s *heldStream) Reset(uint64)                { s.end() }
func (s *heldStream) CloseRead(uint64)            { s.end() }
func (s *heldStream) CloseWrite() error           { return nil }
func (s *heldStream) Close() error                { s.end(); return nil }

// A relay m on a–m–b that keeps a's early first flight (one-message or
// resumed, "TRANSFER 100 to m" as early data) instead of forwarding it,
// answers a with a forged Retry, and sends the kept flight on to b (on the
// stream whose header it had forwarded) once a's open made again went
// ahead does not make b's service take the bytes twice: the open made
// again names the flight as abandoned, b records the name when it reads
// that first message, and answers the late flight with Retry as a replay.
// b's service gets the bytes once, from the open made again.
func TestAttackForgedRetryThenLateFlight(t *testing.T) {
	t.Parallel()
	testForgedRetryLateFlight(t, true)
}
func TestAttackForgedRetryThenLateFlightResumable(t *testing.T) {
	t.Parallel()
	testForgedRetryLateFlight(t, false)
}

func testForgedRetryLateFlight(t *testing.T, noResume bool) {
	c := newCluster(t, true)
	captured := make(chan []byte, 1)
	heldOut := make(chan links.Stream, 1)
	fake, err := (&circuit.Result{Code: circuit.Retry, Node: "b"}).AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	c.tweak = func(cfg *Config) {
		switch cfg.Name {
		case "b":
			cfg.hooks = &hooks{strikeWindow: 3 * time.Second}
		case "m":
			cfg.hooks = &hooks{relay: func(in, out links.Stream) (links.Stream, links.Stream) {
				if !armed.CompareAndSwap(true, false) {
					return in, out
				}
				msg, err := circuit.ReadHandshake(in) // a's first flight after the header
				if err != nil {
					t.Errorf("relay: read a's flight: %v", err)
					return in, out
				}
				captured <- seal.AppendMessage(nil, msg)
				heldOut <- out // the header already went to b; hold that stream
				in.Write(fake) // forged Retry to a
				return newHeldStream(in), newHeldStream(out)
			}}
		}
	}
	c.build("a-m", "m-b")
	c.waitRoute("a", "b", 2)
	a, b := c.nodes["a"], c.nodes["b"]
	got := serveBank(t, b)
	if err := roundTrip(t, a, "b", EchoService, []byte("x")); err != nil {
		t.Fatal(err) // a learns b's key record: its next open is one-message
	}
	time.Sleep(3200 * time.Millisecond) // b past its replay window of its start
	armed.Store(true)
	if reply, err := transfer(t, a, noResume); err != nil || string(reply) != "ok" {
		t.Errorf("a's transfer: %q, %v; want the answer of the open made again", reply, err)
	}
	var flight []byte
	select {
	case flight = <-captured:
	default:
		t.Fatal("the relay captured no flight")
	}
	out := <-heldOut
	// Now (well within b's window and HeaderTimeout) m sends the kept flight.
	if _, err := out.Write(flight); err != nil {
		t.Fatalf("relay: late flight: %v", err)
	}
	if res, err := circuit.ReadResult(out, 0); err != nil || res.Code != circuit.Retry {
		t.Errorf("b answered the late flight: %+v, %v; want Retry", res, err)
	}
	seen := received(got, 3*time.Second)
	out.Reset(circuit.CloseCancelled)
	if len(seen) != 1 {
		t.Errorf("b's service received %q: one early write of a delivered %d times", seen, len(seen))
	}
}
