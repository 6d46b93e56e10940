package links

import (
	"context"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestAttackTinyControlFramesReadInBulk: a neighbour with a valid
// certificate fills its control stream with the shortest frames there
// are (frames of an unknown type and draining frames, 5 bytes each, and
// probe replies of 21), which the node reads and discards. Read straight
// from the QUIC stream, each frame cost the node two reads of it, each
// taking the stream's and the connection's locks and accounting flow
// control: many times the CPU per byte the same bytes cost as circuit
// data. The node reads the control stream through a buffer: at most one
// read of the stream per 256 bytes of such frames, and the link still
// carries the routing frame that follows them.
func TestAttackTinyControlFramesReadInBulk(t *testing.T) {
	var reads atomic.Int64
	ca := testCA(t, "m")
	a := newNode(t, issue(t, ca, "a"), tolerant)
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) {
		tolerant(c)
		c.testCtrlReads = &reads
	})
	la := dial(t, a, b)
	b.rec.waitEvent(t, "up", patience)
	lb := acceptedLink(t, b, "a").(*quicLink)

	unknown, _ := appendFrame(nil, 0x7e, nil)
	draining, _ := appendFrame(nil, frameDraining, nil)
	reply, _ := appendFrame(nil, frameProbeReply, make([]byte, probeLen))
	unit := append(append(append([]byte(nil), unknown...), draining...), reply...)
	chunk := make([]byte, 0, 64<<10)
	for len(chunk)+len(unit) <= cap(chunk) {
		chunk = append(chunk, unit...)
	}
	const total = 4 << 20
	end, _ := appendFrame(nil, frameRouting, []byte("end"))

	before := reads.Load()
	cpu0 := processCPU()
	var sent int
	for sent < total {
		rawControl(t, la, chunk)
		sent += len(chunk)
	}
	rawControl(t, la, end)
	b.rec.waitEvent(t, "routing", patience)
	cpu := processCPU() - cpu0
	n := reads.Load() - before
	frames := sent / len(unit) * 3

	// The same bytes as circuit data, for comparison (logged only).
	go func() {
		s, err := lb.AcceptStream(context.Background())
		if err == nil {
			_, _ = io.Copy(io.Discard, s)
		}
	}()
	s, err := la.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got0, cpu0 := lb.conn.ConnectionStats().BytesReceived, processCPU()
	for w := 0; w < sent; w += len(chunk) {
		if _, err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b to receive the circuit data", patience, func() bool {
		return lb.conn.ConnectionStats().BytesReceived-got0 >= uint64(sent)
	})
	data := processCPU() - cpu0
	s.Reset(0)

	t.Logf("a sent %d bytes of tiny control frames (%d frames): b read its control stream %d times (%.4f reads per frame), the process spent %v of CPU; the same bytes of circuit data: %v",
		sent, frames, n, float64(n)/float64(frames), cpu.Round(time.Millisecond), data.Round(time.Millisecond))
	if limit := int64(sent / 256); n > limit {
		t.Errorf("b read its control stream %d times for %d bytes of frames (%d frames): more than one read per 256 bytes (%d)", n, sent, frames, limit)
	}
	if err := lb.Err(); err != nil {
		t.Fatalf("b's link to a ended: %v", err)
	}
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
