package links

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
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
// lasted, and the link lasted for good, nothing logged: b still sends its
// own probes, and a's detector hears them. Now a link whose peer takes no
// control frame for ControlStall while one waits ends, with a reason that
// says so, and what a held is freed.
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
	if err := la.Err(); !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "took no control frame") {
		t.Fatalf("a's link to b ended with %v, want ErrLinkLost saying b took no control frame", err)
	}
	t.Logf("a's link to b ended: %v", la.Err())
}

// slowHandler reads every routing frame, taking perFrame for each: a
// CPU-starved peer, whose Routing runs in its read loop, or one behind a
// slow link.
type slowHandler struct {
	*recorder
	perFrame time.Duration
	n        atomic.Int64
}

func (h *slowHandler) Routing(l Link, p []byte) {
	time.Sleep(h.perFrame)
	h.n.Add(1)
}

// TestSlowReaderKeepsItsLink: b reads every control frame, but slowly
// (50 ms each), while a queues it a large routing dump at once (250
// frames of 60 KiB, within ControlQueue and, set here, ControlBytes). b
// takes frames the whole time, so its link must stay up: the last frames wait longer than ControlStall (5 s)
// from their queueing, but never that long without a frame taken. Before,
// ControlStall counted from the queueing and a closed the link while b
// was reading, saying it took nothing.
func TestSlowReaderKeepsItsLink(t *testing.T) {
	ca := testCA(t, "m")
	const stall = 5 * time.Second
	a := newNode(t, issue(t, ca, "a"), func(c *QUICConfig) {
		tolerant(c)
		c.ControlStall = stall
		c.ControlBytes = 16 << 20
	})
	slow := &slowHandler{recorder: newRecorder(), perFrame: 50 * time.Millisecond}
	b := newNode(t, issue(t, ca, "b"), func(c *QUICConfig) {
		tolerant(c)
		c.Handler = slow
	})
	la := dial(t, a, b)
	slow.waitEvent(t, "up", patience)
	payload := make([]byte, 60<<10)
	const frames = 250
	for range frames { // one burst, within ControlQueue and ControlBytes: none dropped
		if err := la.SendRouting(payload); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	waitFor(t, "b to read every frame", 3*patience, func() bool { return slow.n.Load() == frames || la.Err() != nil })
	if err := la.Err(); err != nil {
		t.Fatalf("b read %d of %d frames (%v each, never stopping) and a closed the link: %v", slow.n.Load(), frames, slow.perFrame, err)
	}
}
