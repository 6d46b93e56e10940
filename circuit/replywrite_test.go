package circuit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/circuitmesh/circuitmesh/links"
	"github.com/circuitmesh/circuitmesh/links/identity"
)

// deafStream is a relay's stream toward the destination that reads
// nothing until release is closed: the destination's writes get no
// flow-control credit past the stream's window.
type deafStream struct {
	links.Stream
	release <-chan struct{}
}

func (s deafStream) Read(p []byte) (int, error) {
	<-s.release
	return s.Stream.Read(p)
}

// TestReplyWriteBoundedWhenThePathTakesNothing: the relay before d takes
// nothing d writes on a circuit (it gives no credit past a stream window
// of 32 bytes), so d's reply to a full handshake's first message cannot
// leave. The open recorded its path through 15 relays of the longest
// names, as a source may ask: the reply, the result with that path and
// the handshake's second message, is larger than the 1,452 bytes that
// quic-go takes from a Write without credit. AcceptSecureWithin gives the
// reply's write the window it gives the third message after it: the
// accept fails with os.ErrDeadlineExceeded once that window ran out and
// resets the circuit with CloseInternal (the source broke no rule), which
// the source reads once the relay reads again. Before, the write had no
// deadline and held the accept, and what a node counts against the
// handshake's source meanwhile, for as long as the path took nothing.
func TestReplyWriteBoundedWhenThePathTakesNothing(t *testing.T) {
	const window = 32
	p := newPath(t, 1, &quic.Config{InitialStreamReceiveWindow: window, MaxStreamReceiveWindow: window})
	release := make(chan struct{})
	letRead := sync.OnceFunc(func() { close(release) })
	defer letRead()
	p.wrap = func(in, out links.Stream) (links.Stream, links.Stream) {
		return in, deafStream{Stream: out, release: release}
	}
	// The header relay 0 forwards is that of an open 15 relays into its
	// path, each named with MaxNameLen bytes.
	p.forge = func(fo *Open) {
		fo.Path = fo.Path[:1] // the source
		for i := range 15 {
			fo.Path = append(fo.Path, fmt.Sprintf("%02d%s", i, strings.Repeat("r", identity.MaxNameLen-2)))
		}
		fo.Hop = 15
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := p.links[0].open()
	if err != nil {
		t.Fatal(err)
	}
	k := newSealKeys(t)
	o := basicOpen()
	o.Flags = FlagRecordPath
	const third = time.Second
	type outcome struct {
		err  error
		took time.Duration
	}
	accepted := make(chan outcome, 1)
	wait := p.start(ctx, func(s links.Stream, o *Open) (*Conn, error) {
		r, err := respondFull(k, s, o)
		if err != nil {
			return nil, err
		}
		began := time.Now()
		c, err := AcceptSecureWithin(s, o, Addr{Node: "d", Service: o.Service}, r, third)
		accepted <- outcome{err, time.Since(began)}
		return c, err
	})
	dialed := make(chan error, 1)
	go func() {
		c, err := k.dial(o, true, false, false)(ctx, s)
		if c != nil {
			c.Close()
		}
		dialed <- err
	}()
	const patience = 30 * time.Second
	var got outcome
	select {
	case got = <-accepted:
	case <-time.After(patience):
		t.Fatalf("d's accept still writing its reply %v after it began, with a window of %v for that write", patience, third)
	}
	t.Logf("d's accept returned after %v: %v", got.took.Round(time.Millisecond), got.err)
	if !errors.Is(got.err, os.ErrDeadlineExceeded) || !strings.Contains(got.err.Error(), "write the reply") {
		t.Fatalf("d's accept: %v, want its reply's write to run out of time (os.ErrDeadlineExceeded)", got.err)
	}
	if got.took < third {
		t.Fatalf("d's accept gave up after %v, before the reply's window of %v", got.took, third)
	}
	// The circuit is reset, not left open: once the relay reads again,
	// the source learns that d gave up, and why.
	letRead()
	select {
	case err := <-dialed:
		var re *ResetError
		if !errors.As(err, &re) || re.Code.Reason() != CloseInternal {
			t.Fatalf("the source's dial: %v, want the circuit reset with %q", err, CloseCode(CloseInternal))
		}
		t.Logf("the source's dial: %v", err)
	case <-time.After(patience):
		t.Fatalf("the source's dial still waiting %v after d gave up and the relay read again", patience)
	}
	cancel()
	_, sps, _ := wait()
	for _, sp := range sps {
		select {
		case <-sp.Done():
		case <-time.After(patience):
			t.Error("the relay did not end the circuit")
		}
	}
}
