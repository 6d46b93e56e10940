package links

import (
	"encoding/binary"
	"testing"
	"time"
)

// waitQuiet waits until l sends fewer than quiet bytes in a second, and
// returns the bytes its connection sent by then.
func waitQuiet(t *testing.T, l *quicLink, quiet uint64) uint64 {
	t.Helper()
	out := l.conn.ConnectionStats().BytesSent
	waitFor(t, "the link's sending to end", patience, func() bool {
		time.Sleep(time.Second)
		now := l.conn.ConnectionStats().BytesSent
		done := now-out < quiet
		out = now
		return done
	})
	return out
}

// TestMaximalProbesNotEchoedWhole: a neighbour (any holder of a valid
// certificate) sends probes of the largest frame a control stream carries
// (MaxFrameSize, 64 KiB) instead of 16 bytes. A probe reply goes ahead of
// every other frame and of circuit data, so echoing such probes whole had
// the node send back about as many bytes as it received, at the highest
// priority. The reply carries the 16 bytes a probe's measurement reads:
// the node sends back a small fraction of what it received (its replies
// and QUIC's acknowledgements), and the link stays up.
func TestMaximalProbesNotEchoedWhole(t *testing.T) {
	_, b, la := pairWith(t, tolerant)
	lb := acceptedLink(t, b, "a").(*quicLink)
	before := lb.conn.ConnectionStats()
	const probes = 64
	probe, err := appendFrame(nil, frameProbe, make([]byte, MaxFrameSize))
	if err != nil {
		t.Fatal(err)
	}
	for range probes {
		rawControl(t, la, probe)
	}
	sent := uint64(probes * len(probe))
	waitFor(t, "b to receive the probes", patience, func() bool {
		return lb.conn.ConnectionStats().BytesReceived-before.BytesReceived >= sent
	})
	// b has read them and sends its replies at once: wait until it sends
	// no more than its own probes and acknowledgements (under 4 KiB a
	// second).
	waitQuiet(t, lb, 4<<10)
	after := lb.conn.ConnectionStats()
	in, back := after.BytesReceived-before.BytesReceived, after.BytesSent-before.BytesSent
	ratio := float64(back) / float64(in)
	t.Logf("a neighbour sent %d probes of %d bytes (%d bytes received by b): b sent back %d bytes, %.4f bytes out per byte in",
		probes, MaxFrameSize, in, back, ratio)
	if ratio > 0.1 {
		t.Errorf("b sent back %.2f bytes per byte of maximal probes it received (%d of %d)", ratio, back, in)
	}
	if la.Err() != nil || lb.Err() != nil {
		t.Fatalf("the link went down: %v / %v", la.Err(), lb.Err())
	}
}

// TestProbeRepliesBeyondTheQueueDropped: a neighbour that does not take
// its control stream (b's writer is held here) sends 10,000 probes. b
// queues at most 16 replies, drops the rest and goes on reading the
// link: the routing frame sent after the probes reaches b's handler
// while the replies wait. Once the writer runs again b sends the
// replies it kept, well under 16 KiB with QUIC's own packets (path MTU
// probes of about 1,400 bytes among them), not the 210,000 bytes of a
// reply to each probe, and the link stays up.
func TestProbeRepliesBeyondTheQueueDropped(t *testing.T) {
	// No probes of their own: the replies are the only control frames.
	_, b, la := pairWith(t, func(c *QUICConfig) { c.ProbeInterval = patience })
	lb := acceptedLink(t, b, "a").(*quicLink)
	const probes = 10000
	var flood []byte
	for i := range probes {
		flood, _ = appendFrame(flood, frameProbe, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(i)), uint64(time.Now().UnixNano())))
	}
	routing, _ := appendFrame(nil, frameRouting, []byte("after the probes"))
	lb.writeMu.Lock() // stall b's writer
	held := true
	defer func() {
		if held {
			lb.writeMu.Unlock()
		}
	}()
	rawControl(t, la, append(flood, routing...))
	b.rec.waitEvent(t, "routing", patience)
	queued := len(lb.prioQ)
	before := lb.conn.ConnectionStats().BytesSent
	lb.writeMu.Unlock()
	held = false
	waitFor(t, "b's replies to end", patience, func() bool {
		return len(lb.prioQ) == 0
	})
	sent := waitQuiet(t, lb, 1<<10) - before
	t.Logf("%d probes while b's writer was held: %d replies queued; b then sent %d bytes", probes, queued, sent)
	if queued > 16 {
		t.Errorf("b queued %d probe replies, want at most 16", queued)
	}
	if sent >= 16<<10 {
		t.Errorf("b sent %d bytes once its writer ran, want the replies it queued, under 16 KiB", sent)
	}
	if la.Err() != nil || lb.Err() != nil {
		t.Fatalf("the link went down: %v / %v", la.Err(), lb.Err())
	}
}
