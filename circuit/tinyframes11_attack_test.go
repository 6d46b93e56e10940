package circuit

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
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

// TestAttackTinyResumableFramesReadInBulk: the other end of a resumable
// circuit (a node with a valid certificate, using its own circuit) fills
// its sealed records with the smallest frames there are: pings, one byte
// each, or data frames of one byte of data (four bytes each). The
// destination read each frame with Reads of the path of its own (two or
// three for a data frame), took the circuit's lock for it and, for data,
// woke its readers: a ping or a byte of data so framed cost it many
// times the CPU a byte of data costs in a frame of a record (2 MiB of
// pings: 2,097,157 Reads and 321 ms of the process's CPU, of data frames
// of one byte: 1,572,329 Reads and 139 ms, against 27 ms for the same
// bytes as whole data frames, load average 5). A record's pings, and its
// whole data frames, are taken together: at most one Read of the path
// per 256 bytes of either, the pinging end still gets its pong, and the
// application reads every byte of the small frames in order.
func TestAttackTinyResumableFramesReadInBulk(t *testing.T) {
	const total = 2 << 20
	const size = 16 << 10 // a record's worth of frames, written at once
	ping := floodResumable11(t, bytes.Repeat([]byte{framePing}, size), total, nil)
	if ping.pongs == 0 {
		t.Errorf("the pinging end got no pong")
	}
	var tiny, want []byte
	for i := range size / 4 {
		tiny = append(tiny, frameData, 0, 1, byte(i%251))
	}
	for range total / size {
		for i := range size / 4 {
			want = append(want, byte(i%251))
		}
	}
	small := floodResumable11(t, tiny, total, want)
	// For comparison (logged only): the same bytes as data frames of a
	// record each (acknowledgements: TestAttackAckFloodReadInBulk).
	data := append(binary.BigEndian.AppendUint16([]byte{frameData}, size-3), make([]byte, size-3)...)
	whole := floodResumable11(t, data, total, make([]byte, total/size*(size-3)))
	t.Logf("%d bytes of frames: pings: %d Reads of the destination's path, %v of the process's CPU; data frames of one byte: %d Reads, %v; "+
		"whole data frames: %d Reads, %v",
		total, ping.reads, ping.cpu.Round(time.Millisecond), small.reads, small.cpu.Round(time.Millisecond),
		whole.reads, whole.cpu.Round(time.Millisecond))
	limit := int64(total / 256)
	if ping.reads > limit {
		t.Errorf("the destination read its path %d times for %d bytes of pings: more than one read per 256 bytes (%d)", ping.reads, total, limit)
	}
	if small.reads > limit {
		t.Errorf("the destination read its path %d times for %d bytes of data frames of one byte: more than one read per 256 bytes (%d)", small.reads, total, limit)
	}
}

// flood11 is what floodResumable11 measured.
type flood11 struct {
	reads int64         // the destination's Reads of its path
	cpu   time.Duration // the process's CPU
	pongs int           // the pongs the source's side of the path got
}

// floodResumable11 opens a resumable circuit, sends its hello by hand and
// then chunk until total bytes of it left, followed by one data frame:
// the destination's application must read want from the chunks, then
// that frame's bytes.
func floodResumable11(t *testing.T, chunk []byte, total int, want []byte) flood11 {
	t.Helper()
	var reads atomic.Int64
	_, c, dst := rawDest(t, func(c *Conn) Path { return countedPath{c, &reads} })
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
	last := []byte{frameData, 0, 4, 'l', 'a', 's', 't'}
	want = append(want[:len(want):len(want)], last[3:]...)
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(want))
		n, _ := io.ReadFull(dst, b)
		got <- b[:n]
		_, _ = io.Copy(io.Discard, dst)
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
	if _, err := c.caller.Write(last); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return dst.in.Load() >= int64(len(want)) && dst.frames.Load() > frames0 })
	cpu := time.Duration(cpuNS(t) - cpu0)
	if chunk[0] == framePing {
		waitFor(t, func() bool { return pongs.Load() > 0 })
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the destination's application read %d bytes, not the %d sent (or not in order)", len(b), len(want))
	}
	return flood11{reads.Load(), cpu, int(pongs.Load())}
}

// TestMixedSmallFramesKeepOrder: records mixing data frames of many sizes
// with pings, as a peer may send them, are read in bulk where they can
// be and the application still reads every byte of data in order.
func TestMixedSmallFramesKeepOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	const size = 16 << 10
	var chunk, data []byte
	for len(chunk) < size-400 {
		if rng.IntN(4) == 0 {
			chunk = append(chunk, framePing)
			continue
		}
		n := 1 + rng.IntN(300)
		chunk = binary.BigEndian.AppendUint16(append(chunk, frameData), uint16(n))
		for range n {
			b := byte(rng.Uint32())
			chunk = append(chunk, b)
			data = append(data, b)
		}
	}
	const writes = 64
	var want []byte
	for range writes {
		want = append(want, data...)
	}
	floodResumable11(t, chunk, writes*len(chunk), want)
}
