package links

import (
	"testing"
	"time"
)

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
	out := lb.conn.ConnectionStats().BytesSent
	waitFor(t, "b's replies to end", patience, func() bool {
		time.Sleep(time.Second)
		now := lb.conn.ConnectionStats().BytesSent
		quiet := now-out < 4<<10
		out = now
		return quiet
	})
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
