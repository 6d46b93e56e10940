package circuit

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// heldWrites is a source's stream whose writes after the first (the full
// handshake's third message) wait until release is closed: a source
// slowed down (a starved machine, a path queueing the payload of earlier
// circuits) whose third message reaches the destination too late.
type heldWrites struct {
	links.Stream
	writes  int
	release chan struct{}
}

func (s *heldWrites) Write(p []byte) (int, error) {
	if s.writes++; s.writes > 1 {
		<-s.release
	}
	return s.Stream.Write(p)
}

// TestSlowThirdMessageNotAProtocolError: a destination whose read deadline
// ran out while it waited for the third message of a full handshake
// (HeaderTimeout at a node) resets the circuit, and the source, which
// broke no rule, learns that a hop failed for a local reason (code 4,
// internal), not that it broke the protocol (code 5): an honest circuit
// never ends with a protocol error. Through one relay, which forwards the
// destination's code.
func TestSlowThirdMessageNotAProtocolError(t *testing.T) {
	p, ctx, s := openFirstHop(t, 1)
	k := newSealKeys(t)
	o := basicOpen()
	wait := p.start(ctx, func(s links.Stream, o *Open) (*Conn, error) {
		r, err := respondFull(k, s, o)
		if err != nil {
			return nil, err
		}
		// The bound a node puts on the open, here run out by the time
		// the third message is read.
		s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		return AcceptSecure(s, o, Addr{Node: "d", Service: o.Service}, r)
	})
	held := &heldWrites{Stream: s, release: make(chan struct{})}
	type dialed struct {
		c   *Conn
		err error
	}
	dch := make(chan dialed, 1)
	go func() {
		c, err := k.dial(o, true, false, false)(ctx, held)
		dch <- dialed{c, err}
	}()
	dest, sps, err := wait()
	if dest != nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the destination's accept: %v, want its read deadline exceeded", err)
	}
	close(held.release) // the third message leaves now, too late
	d := <-dch
	err = d.err
	if err == nil {
		// The third message left before the reset came back: the
		// source reads the reset.
		defer d.c.Close()
		_, err = d.c.Read(make([]byte, 1))
	}
	for _, sp := range sps {
		select {
		case <-sp.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the relay did not end the circuit")
		}
	}
	var re *ResetError
	if !errors.As(err, &re) || !re.Remote {
		t.Fatalf("the source saw %v, want the destination's reset", err)
	}
	if got := re.Code.Reason(); got != CloseInternal || re.Code.Hop() != 0 {
		t.Fatalf("the source saw %q (code %d), want %q from the destination: a deadline run out at the destination is not the source's protocol error (%v)",
			re.Code, uint64(re.Code), CloseCode(CloseInternal), err)
	}
}
