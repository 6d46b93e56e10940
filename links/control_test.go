package links

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// rawControl writes bytes on a link's control stream as a peer would.
func rawControl(t *testing.T, l Link, b []byte) {
	t.Helper()
	ql := l.(*quicLink)
	ql.writeMu.Lock()
	defer ql.writeMu.Unlock()
	if _, err := ql.ctrl.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownFrameSkipped(t *testing.T) {
	_, b, la := pair(t)
	unknown, _ := appendFrame(nil, 0x7e, []byte("a frame type from the future"))
	routing, _ := appendFrame(nil, frameRouting, []byte("after"))
	rawControl(t, la, append(unknown, routing...))
	b.rec.waitEvent(t, "routing", patience)
	b.rec.mu.Lock()
	got := string(b.rec.routed[0])
	b.rec.mu.Unlock()
	if got != "after" || la.Err() != nil {
		t.Fatalf("routed %q, link error %v", got, la.Err())
	}
}

func TestOversizedFrameClosesLink(t *testing.T) {
	a, b, la := pair(t)
	var hdr [frameHeaderLen]byte
	hdr[0] = frameRouting
	binary.BigEndian.PutUint32(hdr[1:], MaxFrameSize+1)
	rawControl(t, la, hdr[:])
	b.rec.waitEvent(t, "down", patience)
	a.rec.waitEvent(t, "down", patience)
	b.rec.mu.Lock()
	berr := b.rec.errs[0]
	b.rec.mu.Unlock()
	if !errors.Is(berr, ErrLinkLost) || !errors.Is(berr, ErrFrameTooLarge) {
		t.Fatalf("receiver's link error: %v", berr)
	}
	if err := la.Err(); !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "control frame too large") {
		t.Fatalf("sender's link error: %v", err)
	}
}

func TestSendRoutingQueueBounded(t *testing.T) {
	_, _, la := pair(t)
	ql := la.(*quicLink)
	ql.writeMu.Lock() // stall the writer
	var err error
	sent := 0
	for range 2*DefaultControlQueue + 2 {
		if err = la.SendRouting([]byte("x")); err != nil {
			break
		}
		sent++
	}
	ql.writeMu.Unlock()
	if !errors.Is(err, ErrQueueFull) {
		t.Fatalf("after %d payloads: %v, want ErrQueueFull", sent, err)
	}
	if sent < DefaultControlQueue || sent > DefaultControlQueue+1 {
		t.Fatalf("queued %d payloads before refusing, want about %d", sent, DefaultControlQueue)
	}
}

// TestSendRoutingQueueBoundedInBytes: with the writer stalled, a link
// queues routing payloads up to ControlBytes and drops the next with
// ErrQueueFull, saying what it holds; a payload larger than the bound
// passes when the queue is empty, alone. What was queued arrives once the
// writer goes on.
func TestSendRoutingQueueBoundedInBytes(t *testing.T) {
	// No probes: a reply the writer took first would hold it at writeMu
	// in place of the routing frame.
	_, b, la := pairWith(t, func(c *QUICConfig) { c.ControlBytes, c.ProbeInterval = 1000, patience })
	ql := la.(*quicLink)
	payload := func(i, n int) []byte { return fmt.Appendf(nil, "%d:%0*d", i, n-len(fmt.Sprint(i))-1, 0) }
	taken := func() {
		t.Helper()
		waitFor(t, "the writer to take the queued frame", patience, func() bool { return ql.routingBytes.Load() == 0 })
	}
	var want []string
	send := func(p []byte) {
		t.Helper()
		if err := la.SendRouting(p); err != nil {
			t.Fatalf("send %d bytes: %v", len(p), err)
		}
		want = append(want, string(p))
	}
	ql.writeMu.Lock() // stall the writer
	send(payload(0, 300))
	taken() // the writer holds it, waiting for writeMu
	for i := 1; i <= 3; i++ {
		send(payload(i, 300)) // 3 frames of 305 bytes: 915 of 1000
	}
	err := la.SendRouting(payload(4, 300))
	if !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), "915 bytes queued, bound 1000") {
		t.Fatalf("a fourth payload of 300 bytes with 915 queued: %v, want ErrQueueFull saying 915 bytes queued, bound 1000", err)
	}
	ql.writeMu.Unlock()
	taken()

	ql.writeMu.Lock()
	send(payload(5, 300))
	taken()
	send(payload(6, 5000)) // larger than the bound, into an empty queue
	if err := la.SendRouting([]byte("7")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a payload behind one larger than the bound: %v, want ErrQueueFull", err)
	}
	ql.writeMu.Unlock()

	waitFor(t, "b to get every payload queued", patience, func() bool {
		b.rec.mu.Lock()
		defer b.rec.mu.Unlock()
		return len(b.rec.routed) >= len(want)
	})
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	for i, p := range b.rec.routed {
		if i >= len(want) || string(p) != want[i] {
			t.Fatalf("b got payload %d of %d bytes, want the %d sent in order", i, len(p), len(want))
		}
	}
}

func TestNegativeControlBytesRefused(t *testing.T) {
	ca := testCA(t, "m")
	cfg := QUICConfig{Identity: issue(t, ca, "a"), Handler: newRecorder(), ControlBytes: -1}
	if _, err := NewQUICTransport(cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("ControlBytes -1: %v, want ErrConfig", err)
	}
}
