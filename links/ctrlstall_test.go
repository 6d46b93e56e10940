package links

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// deafHandler is a peer's Handler whose Routing blocks until released: the
// peer's link reads nothing more from its control stream, and the
// stream's flow control stops what the other side writes to it.
type deafHandler struct {
	*recorder
	once    sync.Once
	release chan struct{}
}

func (h *deafHandler) Routing(l Link, p []byte) {
	h.recorder.Routing(l, p)
	<-h.release
}

func (h *deafHandler) open() { h.once.Do(func() { close(h.release) }) }

// TestAttackPeerThatDoesNotReadItsControlStream: b, a peer with a valid
// certificate, stops reading its control stream after the first routing
// frame. a keeps sending it routing frames of the largest size, as a node
// with a large routing table does. Before, a held every frame it queued
// (ControlQueue, 256 of up to 64 KiB: 16 MiB) for as long as the link
// lasted, and the link lasted for good, nothing logged: b answers a's
// probes on its own side, so a's detector hears it. Now a frame not
// written within ControlStall of being queued ends the link, with a
// reason that says so, and what a held is freed.
func TestAttackPeerThatDoesNotReadItsControlStream(t *testing.T) {
	ca := testCA(t, "m")
	const stall = time.Second
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		tolerant(c)
		c.ControlStall = stall
	})
	deaf := &deafHandler{recorder: newRecorder(), release: make(chan struct{})}
	defer deaf.open()
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) {
		tolerant(c)
		c.Handler = deaf
	})
	la := dial(t, a, b)
	deaf.waitEvent(t, "up", patience)
	payload := make([]byte, MaxFrameSize)
	queued, dropped := 0, 0
	for la.Err() == nil && dropped < 64 {
		switch err := la.SendRouting(payload); {
		case err == nil:
			queued++
		case errors.Is(err, ErrQueueFull):
			dropped++
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Logf("a queued %d frames of %d bytes (%d MiB) for b before its queue was full (%d dropped)", queued, len(payload), queued*len(payload)>>20, dropped)
	select {
	case <-la.Done():
	case <-time.After(patience):
		t.Fatalf("a's link to b, which reads nothing of its control stream, still up after %v (ControlStall %v)", patience, stall)
	}
	if err := la.Err(); !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "control stream") {
		t.Fatalf("a's link to b ended with %v, want ErrLinkLost naming the control stream", err)
	}
	t.Logf("a's link to b ended: %v", la.Err())
}
