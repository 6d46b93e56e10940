package circuit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// ackFrame is an acknowledgement of off, as the other end frames it.
func ackFrame(off int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{frameAck}, uint64(off))
}

// TestAttackAckFloodReadInBulk: the other end of a resumable circuit (a
// node with a valid certificate, using its own circuit) fills its sealed
// records with acknowledgements (9 bytes each; of offset 0, which a
// destination that sent nothing takes), or with the smallest frames of
// each kind in turn (a ping, an acknowledgement, a data frame of one
// byte), so that no run of one kind is longer than one frame. The
// destination read each acknowledgement with two Reads of the path and a
// take of the circuit's lock, and each frame of a mixed record the same
// way as a lone one: at most one Read of the path per 256 bytes now, the
// pinging end gets its pong, and the application reads every byte of the
// data frames in order.
func TestAttackAckFloodReadInBulk(t *testing.T) {
	const total = 2 << 20
	const size = 16 << 10 // a record's worth of frames, written at once
	acks := bytes.Repeat(ackFrame(0), size/9)
	ack := floodResumable11(t, acks, total/len(acks)*len(acks), nil)
	var mixed, data []byte
	for i := 0; len(mixed)+14 <= size; i++ {
		// A ping first: floodResumable11 then waits for the pong.
		mixed = append(mixed, framePing)
		mixed = append(mixed, ackFrame(0)...)
		mixed = append(mixed, frameData, 0, 1, byte(i%251))
		data = append(data, byte(i%251))
	}
	rounds := total / len(mixed)
	var want []byte
	for range rounds {
		want = append(want, data...)
	}
	mix := floodResumable11(t, mixed, rounds*len(mixed), want)
	t.Logf("%d bytes of frames: acknowledgements: %d Reads of the destination's path, %v of the process's CPU; "+
		"acknowledgement, ping and data frame of one byte in turn: %d Reads, %v",
		total, ack.reads, ack.cpu.Round(time.Millisecond), mix.reads, mix.cpu.Round(time.Millisecond))
	limit := int64(total / 256)
	if ack.reads > limit {
		t.Errorf("the destination read its path %d times for %d bytes of acknowledgements: more than one read per 256 bytes (%d)", ack.reads, total, limit)
	}
	if mix.reads > limit {
		t.Errorf("the destination read its path %d times for %d bytes of acknowledgements, pings and data frames in turn: more than one read per 256 bytes (%d)", mix.reads, total, limit)
	}
	if mix.pongs == 0 {
		t.Errorf("the pinging end got no pong")
	}
}

// ackRig is a resumable destination that sent sent bytes to a source
// whose side of the path the test writes by hand.
type ackRig struct {
	dst  *Resumable
	send func(frames []byte)
}

// rawDest opens a sealed resumable circuit over a one-relay path and
// makes its destination's end over wrap(its sealed conn), with the
// defaults; the source's side of the path is left to the test to write
// and read by hand.
func rawDest(t *testing.T, wrap func(*Conn) Path) (*resumeRig, *circuit, *Resumable) {
	t.Helper()
	g := newResumeRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, c, err := g.connect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	dst := NewResumableDest(wrap(c.dest), c.dest.LocalAddr(), c.dest.RemoteAddr(), g.table, "s", "echo", ResumeConfig{})
	t.Cleanup(func() {
		dst.Reset(CloseCancelled)
		dst.Wait()
	})
	return g, c, dst
}

func newAckRig(t *testing.T, sent int) ackRig {
	t.Helper()
	g, c, dst := rawDest(t, func(c *Conn) Path { return c })
	go func() { _, _ = io.Copy(io.Discard, c.caller) }()
	var id [idLen]byte
	id[0] = 12
	if _, err := c.caller.Write(append([]byte{frameHello}, id[:]...)); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, g.table, 1)
	if _, err := dst.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.sent == int64(sent)
	})
	return ackRig{dst, func(frames []byte) {
		if _, err := c.caller.Write(frames); err != nil {
			t.Fatal(err)
		}
	}}
}

// TestAckRunChecksEachAck: an acknowledgement taken with a run of others
// in one record is checked as a lone one is: one beyond what the
// destination sent, or below an earlier one, ends the circuit with
// ErrIntegrity, wherever it stands in the run.
func TestAckRunChecksEachAck(t *testing.T) {
	for _, tc := range []struct {
		name string
		acks []int64
		bad  string
	}{
		{"beyond sent, last", []int64{0, 10, 20, 100, 101}, "acknowledgement of 101 outside [100, 100]"},
		{"beyond sent, amid", []int64{10, 20, 500, 30, 40}, "acknowledgement of 500 outside [20, 100]"},
		{"going back", []int64{10, 20, 30, 29, 40}, "acknowledgement of 29 outside [30, 100]"},
		{"first beyond", []int64{101, 1, 2}, "acknowledgement of 101 outside [0, 100]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newAckRig(t, 100)
			var rec []byte
			for _, a := range tc.acks {
				rec = append(rec, ackFrame(a)...)
			}
			g.send(rec)
			_, err := g.dst.Read(make([]byte, 1))
			if !errors.Is(err, ErrIntegrity) || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("the destination's Read returned %v, want ErrIntegrity with %q", err, tc.bad)
			}
		})
	}
}

// TestAckRunTakesTheHighest: a run of acknowledgements in one record,
// rising and repeated, frees what the highest acknowledges and leaves the
// circuit up.
func TestAckRunTakesTheHighest(t *testing.T) {
	g := newAckRig(t, 100)
	var rec []byte
	for _, a := range []int64{0, 0, 5, 5, 60, 60, 99, 100, 100} {
		rec = append(rec, ackFrame(a)...)
	}
	g.send(append(rec, framePing))
	waitFor(t, func() bool {
		g.dst.mu.Lock()
		defer g.dst.mu.Unlock()
		return g.dst.acked == 100
	})
	g.dst.mu.Lock()
	credit, queued, ended := g.dst.credit, g.dst.sbuf.len(), g.dst.ended
	g.dst.mu.Unlock()
	if credit != 100 || queued != 0 || ended {
		t.Fatalf("after acknowledgements up to 100: credit %d, %d bytes kept to send again, ended %v; want 100, 0, false", credit, queued, ended)
	}
	// The circuit still carries data.
	g.send([]byte{frameData, 0, 2, 'o', 'k'})
	b := make([]byte, 2)
	if _, err := io.ReadFull(g.dst, b); err != nil || string(b) != "ok" {
		t.Fatalf("read %q, %v after the acknowledgements", b, err)
	}
}
