package circuit

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// countedPath is a sealed path (it embeds the *Conn, so the resumable
// layer still reads its records in place) that counts its Reads.
type countedPath struct {
	*Conn
	reads *atomic.Int64
}

func (p countedPath) Read(b []byte) (int, error) {
	p.reads.Add(1)
	return p.Conn.Read(b)
}

// TestAttackPingFloodReadInBulk: the other end of a resumable circuit (a
// node with a valid certificate, using its own circuit) fills its sealed
// records with pings, one byte each. The destination read each ping with
// a Read of the path of its own and took the circuit's lock for it: a
// ping cost it many times the CPU a byte of data costs (2 MiB of pings:
// 2,097,157 Reads and 321 ms of the process's CPU against 55 ms for the
// same bytes as data, load average 5). A record's pings are taken
// together: at most one Read of the path per 256 bytes of pings, the
// pinging end still gets its pong, and the circuit still carries data.
func TestAttackPingFloodReadInBulk(t *testing.T) {
	const total = 2 << 20
	const size = 16 << 10 // a record's worth of frames, written at once
	ping := bytes.Repeat([]byte{framePing}, size)
	reads, cpu, pongs := floodResumable11(t, ping, total, 0)
	// For comparison (logged only): the same bytes as data frames of a
	// record each, as data frames of one byte, and as acknowledgements
	// (of offset 0, which a destination that sent nothing accepts).
	data := append(binary.BigEndian.AppendUint16([]byte{frameData}, size-3), make([]byte, size-3)...)
	_, dataCPU, _ := floodResumable11(t, data, total, total/size*(size-3))
	tiny := bytes.Repeat([]byte{frameData, 0, 1, 0}, size/4)
	tinyReads, tinyCPU, _ := floodResumable11(t, tiny, total, total/4)
	acks := bytes.Repeat([]byte{frameAck, 0, 0, 0, 0, 0, 0, 0, 0}, size/9)
	ackReads, ackCPU, _ := floodResumable11(t, acks, total/len(acks)*len(acks), 0)
	t.Logf("%d bytes of pings: the destination read its path %d times (%.4f reads per ping), the process spent %v of CPU; "+
		"the same bytes as data: %v; as data frames of one byte: %d reads, %v; as acknowledgements: %d reads, %v",
		total, reads, float64(reads)/total, cpu.Round(time.Millisecond), dataCPU.Round(time.Millisecond),
		tinyReads, tinyCPU.Round(time.Millisecond), ackReads, ackCPU.Round(time.Millisecond))
	if pongs == 0 {
		t.Errorf("the pinging end got no pong")
	}
	if limit := int64(total / 256); reads > limit {
		t.Errorf("the destination read its path %d times for %d bytes of pings: more than one read per 256 bytes (%d)", reads, total, limit)
	}
}

// floodResumable11 opens a resumable circuit, sends its hello by hand and
// then chunk until total bytes of it left, followed by one data frame:
// the destination's application reads want bytes of data from the chunks
// and that frame's. It returns the destination's
// Reads of its path, the process's CPU meanwhile and the pongs the
// source's side of the path got.
func floodResumable11(t *testing.T, chunk []byte, total int, want int64) (int64, time.Duration, int) {
	t.Helper()
	g := newResumeRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, c, err := g.connect(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int64
	dst := NewResumableDest(countedPath{c.dest, &reads}, c.dest.LocalAddr(), c.dest.RemoteAddr(), g.table, "s", "echo", ResumeConfig{})
	t.Cleanup(func() {
		dst.Reset(CloseCancelled)
		dst.Wait()
	})
	// The source's side: pongs are one byte each, and may come in one
	// record with an acknowledgement (9 bytes).
	var pongs atomic.Int64
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.caller.Read(buf)
			pongs.Add(int64(bytes.Count(buf[:n], []byte{framePong})))
			if err != nil {
				return
			}
		}
	}()
	// The application reads everything.
	got := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, dst)
		got <- n
	}()
	var id [idLen]byte
	id[0] = 1
	if _, err := c.caller.Write(append([]byte{frameHello}, id[:]...)); err != nil {
		t.Fatal(err)
	}
	frames0 := dst.frames.Load()
	cpu0 := cpuNS(t)
	for sent := 0; sent+len(chunk) <= total; sent += len(chunk) {
		if _, err := c.caller.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	last := []byte{frameData, 0, 4, 'l', 'a', 's', 't'}
	if _, err := c.caller.Write(last); err != nil {
		t.Fatal(err)
	}
	want += 4 // "last"
	waitFor(t, func() bool { return dst.in.Load() >= want && dst.frames.Load() > frames0 })
	cpu := time.Duration(cpuNS(t) - cpu0)
	if chunk[0] == framePing {
		waitFor(t, func() bool { return pongs.Load() > 0 })
	}
	return reads.Load(), cpu, int(pongs.Load())
}
