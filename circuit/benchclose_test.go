package circuit

import (
	"context"
	"encoding/binary"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// finHeldStream holds the stream's FIN (CloseWrite) until the peer's
// STOP_SENDING has arrived, as a starved sender does when the peer reads
// the sealed end record, answers and closes before the sender's FIN left.
type finHeldStream struct {
	links.Stream
	stopped atomic.Bool // the stop arrived before the FIN was sent
}

func (f *finHeldStream) CloseWrite() error {
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if _, err := f.Stream.Write(nil); err != nil { // sends nothing
			f.stopped.Store(true)
			break
		}
	}
	return f.Stream.CloseWrite()
}

// A sealed circuit's CloseWrite that wrote the end record succeeds even
// when the other end, having read that record as io.EOF, answered and
// closed (STOP_SENDING with CloseNormal) before the stream's FIN was sent:
// the other end read everything, and the answer still arrives.
func TestSealedCloseWriteAfterPeerReadEnd(t *testing.T) {
	p := newPath(t, 0, nil)
	k := newSealKeys(t)
	f := &finHeldStream{}
	dial := k.dial(basicOpen(), false, false, false)
	c, err := p.connectWith(basicOpen(), k.accept, func(ctx context.Context, s links.Stream) (*Conn, error) {
		f.Stream = s
		return dial(ctx, f)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	const size = 1 << 20
	sink := make(chan error, 1)
	go func() { // reads to EOF, answers with the count, closes
		n, err := io.Copy(io.Discard, c.dest)
		if err == nil {
			var ack [8]byte
			binary.BigEndian.PutUint64(ack[:], uint64(n))
			_, err = c.dest.Write(ack[:])
		}
		if err == nil {
			err = c.dest.CloseWrite()
		}
		c.dest.Close()
		sink <- err
	}()
	if _, err := c.caller.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := c.caller.CloseWrite(); err != nil {
		t.Errorf("CloseWrite after the other end read the end record and closed = %v, want nil", err)
	}
	if !f.stopped.Load() {
		t.Error("the destination's Close did not stop the source's write side before its FIN: the case under test did not happen")
	}
	var ack [8]byte
	if _, err := io.ReadFull(c.caller, ack[:]); err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	if n := binary.BigEndian.Uint64(ack[:]); n != size {
		t.Errorf("destination read %d bytes, want %d", n, size)
	}
	if err := <-sink; err != nil {
		t.Errorf("destination: %v", err)
	}
}
