package circuit

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/circuitmesh/circuitmesh/links"
)

// writeCounted is a link stream that counts its Writes and their bytes.
type writeCounted struct {
	links.Stream
	writes, bytes *atomic.Int64
}

func (s writeCounted) Write(p []byte) (int, error) {
	s.writes.Add(1)
	s.bytes.Add(int64(len(p)))
	return s.Stream.Write(p)
}

// echoWrites counts the Writes (and bytes) on the source's link stream
// and on the relay's streams in each direction.
type echoWrites struct{ srcW, srcB, upW, upB, downW, downB atomic.Int64 }

// reset starts the counts again from 0: the relay may still be writing.
func (e *echoWrites) reset() {
	for _, v := range []*atomic.Int64{&e.srcW, &e.srcB, &e.upW, &e.upB, &e.downW, &e.downB} {
		v.Store(0)
	}
}

func (e *echoWrites) relay(in, out links.Stream) (links.Stream, links.Stream) {
	return writeCounted{in, &e.downW, &e.downB}, writeCounted{out, &e.upW, &e.upB}
}

func (e *echoWrites) source(s links.Stream) links.Stream { return writeCounted{s, &e.srcW, &e.srcB} }

// echoRounds echoes one byte n times from a through b, a pause between
// echoes as between a client's requests.
func echoRounds(t *testing.T, a, b io.ReadWriter, n int) {
	t.Helper()
	buf := make([]byte, 1)
	for i := range n {
		for _, step := range []func() error{
			func() error { _, err := a.Write([]byte{byte(i)}); return err },
			func() error { _, err := io.ReadFull(b, buf); return err },
			func() error { _, err := b.Write(buf); return err },
			func() error { _, err := io.ReadFull(a, buf); return err },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// TestEchoOneWriteEachWay: a one-byte echo on an established circuit
// through a relay (real QUIC) costs one Write of the source's stream and
// one of the relay's in each direction, whether the circuit is clear,
// sealed, or sealed and resumable: the record's head and body go in one
// Write, and a resumable end's acknowledgement rides on the answer or the
// next request, not in a record of its own. What a sealed or resumable
// echo adds is bytes (the record's head, tag and frames), not writes or
// packets at the relay. The bound leaves room for a delayed
// acknowledgement whose 5 ms run out on a loaded machine; an ack in a
// record of its own each time would be 2 writes per echo.
func TestEchoOneWriteEachWay(t *testing.T) {
	const n = 100
	check := func(name string, e *echoWrites, source bool) {
		t.Helper()
		per := func(v *atomic.Int64) float64 { return float64(v.Load()) / n }
		t.Logf("%s, per echo: source %.2f writes (%.1f bytes), relay toward the destination %.2f (%.1f), toward the source %.2f (%.1f)",
			name, per(&e.srcW), per(&e.srcB), per(&e.upW), per(&e.upB), per(&e.downW), per(&e.downB))
		for _, w := range []struct {
			what string
			v    *atomic.Int64
			on   bool
		}{{"the source", &e.srcW, source}, {"the relay toward the destination", &e.upW, true}, {"the relay toward the source", &e.downW, true}} {
			if got := per(w.v); w.on && (got < 1 || got > 1.25) {
				t.Errorf("%s: %s wrote %.2f times per echo, want 1", name, w.what, got)
			}
		}
	}
	t.Run("resumable", func(t *testing.T) {
		g := newResumeRig(t)
		e := &echoWrites{}
		g.wrap, g.source = e.relay, e.source
		_, src, dst := g.pair(ResumeConfig{}, ResumeConfig{})
		echoRounds(t, src, dst, 10)
		e.reset()
		echoRounds(t, src, dst, n)
		check("resumable", e, true)
	})
	t.Run("sealed", func(t *testing.T) {
		g := newResumeRig(t)
		e := &echoWrites{}
		g.wrap, g.source = e.relay, e.source
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, c, err := g.connect(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		echoRounds(t, c.caller, c.dest, 10)
		e.reset()
		echoRounds(t, c.caller, c.dest, n)
		check("sealed", e, true)
	})
	t.Run("clear", func(t *testing.T) {
		p := newPath(t, 1, nil)
		e := &echoWrites{}
		p.wrap = e.relay
		c, err := p.connect(basicOpen(), false)
		if err != nil {
			t.Fatal(err)
		}
		defer c.stop()
		echoRounds(t, c.caller, c.dest, 10)
		e.reset()
		echoRounds(t, c.caller, c.dest, n)
		check("clear", e, false)
	})
}
