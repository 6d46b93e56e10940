package links

import (
	"errors"
	"testing"
	"time"
)

// TestAttackPeerThatReadsItsControlStreamAtATrickle: b, a peer with a
// valid certificate, reads its control stream, but one frame every
// 500 ms: often enough that a's ControlStall (5 s here) never fires, as
// a's writes keep progressing. a sends it routing frames of the largest
// size as fast as its queue accepts them, for longer than ControlStall.
// Before, a kept ControlQueue frames queued for b (256 of 64 KiB: 16 MiB)
// for as long as the link lasted; now it holds at most ControlBytes, and
// a's link to c, an honest peer, carries routing as before meanwhile.
func TestAttackPeerThatReadsItsControlStreamAtATrickle(t *testing.T) {
	ca := testCA(t, "m")
	const stall = 5 * time.Second
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		tolerant(c)
		c.ControlStall = stall
	})
	trickle := &slowHandler{recorder: newRecorder(), perFrame: 500 * time.Millisecond}
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) {
		tolerant(c)
		c.Handler = trickle
	})
	c := newNode(t, issue(t, ca, "c"), tolerant)
	lb := dial(t, a, b)
	trickle.waitEvent(t, "up", patience)
	lc := dial(t, a, c)
	c.rec.waitEvent(t, "up", patience)

	qb := lb.(*quicLink)
	payload := make([]byte, MaxFrameSize)
	frame := frameHeaderLen + len(payload)
	var sent, dropped, peak int
	end := time.Now().Add(stall + 2*time.Second)
	for time.Now().Before(end) && lb.Err() == nil {
		switch err := lb.SendRouting(payload); {
		case err == nil:
			sent++
		case errors.Is(err, ErrQueueFull):
			dropped++
			time.Sleep(5 * time.Millisecond)
		default:
			t.Fatalf("send routing to b: %v", err)
		}
		// Every frame queued for b is of one size: the queue holds
		// len(routingQ) of them.
		peak = max(peak, len(qb.routingQ)*frame)
	}
	read := trickle.n.Load()
	t.Logf("a queued %d frames of %d bytes for b (%d dropped), b read %d; a held up to %d bytes (%.1f MiB) queued for b",
		sent, frame, dropped, read, peak, float64(peak)/(1<<20))
	if err := lb.Err(); err != nil {
		t.Fatalf("a's link to b ended: %v (b reads its control stream, slowly)", err)
	}
	if read == 0 || dropped == 0 {
		t.Fatalf("b read %d frames and a dropped %d: the attack did not run as meant", read, dropped)
	}
	if limit := DefaultControlBytes + frame; peak > limit {
		t.Fatalf("a held %d bytes queued for b, beyond ControlBytes (%d) and one frame: %d", peak, DefaultControlBytes, limit)
	}

	// a's link to c is not held up by b's queue.
	if err := lc.SendRouting([]byte("to c")); err != nil {
		t.Fatalf("send routing to c while b's queue is full: %v", err)
	}
	c.rec.waitEvent(t, "routing", patience)
	c.rec.mu.Lock()
	got := string(c.rec.routed[len(c.rec.routed)-1])
	c.rec.mu.Unlock()
	if got != "to c" {
		t.Fatalf("c got %q, want %q", got, "to c")
	}
}
